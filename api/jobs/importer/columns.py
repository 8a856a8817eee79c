"""What each kind of import file holds: its columns (English and Chinese headers), which are
required, how a cell is read, and the natural key that makes a re-import change nothing."""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    key: str  # the field name of the engine's schema (engine/facts.py)
    zh: str  # the header a Chinese ERP export uses
    required: bool = False
    kind: str = "text"  # text, date, amount, int, list (";"-separated), instalments, bool
    aliases: tuple = ()


class Kind(NamedTuple):
    name: str
    zh: str
    columns: tuple
    key: str = "id"

    def column(self, key: str) -> Column:
        return _COLUMNS[self.name][key]


CUSTOMER_ID = Column("customer_id", "客户编号", True, aliases=("客户代码", "customer"))

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "customers",
            "客户",
            (
                Column("id", "客户编号", True, aliases=("customer_id", "客户代码")),
                Column("name", "客户名称", aliases=("名称",)),
                Column("type", "客户类型", True),
                Column("industry", "行业", True),
                Column("region", "地区", True, aliases=("地理区域", "区域")),
                Column("size", "企业规模", True, aliases=("规模",)),
                Column("since", "合作开始日期", True, "date", aliases=("客户起始日期",)),
                Column("credit_score", "信用评分", kind="int"),
                Column("external_rating", "外部评级", kind="int"),
                Column("approved_limit", "核定额度", kind="amount", aliases=("信用额度",)),
                Column("approved_terms_days", "核定账期", kind="int", aliases=("付款期限",)),
                Column("collector", "催收负责人", aliases=("负责人",)),
                Column("last_reviewed_on", "上次评估日期", kind="date"),
                Column("arrears_reason", "欠款原因"),
                Column("deal_type", "交易类型"),
                Column("tags", "标签", kind="list"),
            ),
        ),
        Kind(
            "contacts",
            "联系人",
            (
                CUSTOMER_ID,
                Column("name", "联系人", True, aliases=("姓名",)),
                Column("role", "职务", aliases=("角色",)),
                Column("email", "邮箱", aliases=("电子邮件",)),
                Column("mobile", "手机", aliases=("电话",)),
                Column("address", "地址", aliases=("通讯地址",)),
                Column("preferred_channel", "首选渠道"),
                Column("language", "语言"),
                Column("primary", "主联系人", kind="bool"),
            ),
            key="customer_id+name",
        ),
        Kind(
            "invoices",
            "发票",
            (
                Column("id", "发票号", True, aliases=("invoice_id", "发票编号")),
                CUSTOMER_ID,
                Column("amount", "金额", True, "amount", aliases=("发票金额",)),
                Column("currency", "币种", True),
                Column("issued_on", "开票日期", True, "date"),
                Column("due_on", "到期日", True, "date", aliases=("到期日期",)),
                Column("order_id", "订单号"),
            ),
        ),
        Kind(
            "payments",
            "收款",
            (
                Column("id", "收款编号", True, aliases=("payment_id",)),
                CUSTOMER_ID,
                Column("invoice_id", "发票号"),
                Column("amount", "金额", True, "amount", aliases=("收款金额",)),
                Column("paid_on", "收款日期", True, "date"),
            ),
        ),
        Kind(
            "credit_notes",
            "贷项通知单",
            (
                Column("id", "贷项通知单号", True, aliases=("credit_note_id", "红字发票号")),
                CUSTOMER_ID,
                Column("invoice_id", "发票号", True),
                Column("amount", "金额", True, "amount"),
                Column("issued_on", "开具日期", True, "date"),
            ),
        ),
        Kind(
            "promises",
            "付款承诺",
            (
                Column("id", "承诺编号", True, aliases=("promise_id",)),
                CUSTOMER_ID,
                Column("invoice_id", "发票号"),
                Column("amount", "金额", True, "amount", aliases=("承诺金额",)),
                Column("made_on", "承诺日期", True, "date"),
                Column("promised_on", "承诺付款日", True, "date", aliases=("承诺付款日期",)),
            ),
        ),
        Kind(
            "disputes",
            "争议",
            (
                Column("id", "争议编号", True, aliases=("dispute_id",)),
                CUSTOMER_ID,
                Column("invoice_id", "发票号", True),
                Column("opened_on", "争议日期", True, "date"),
                Column("resolved_on", "解决日期", kind="date"),
                Column("reason", "争议原因", aliases=("原因",)),
            ),
        ),
        Kind(
            "instalment_plans",
            "分期计划",
            (
                Column("id", "分期编号", True, aliases=("plan_id",)),
                CUSTOMER_ID,
                Column("invoice_ids", "发票号", True, "list"),
                Column("agreed_on", "约定日期", True, "date"),
                Column("instalments", "分期明细", True, "instalments"),
            ),
        ),
    )
}
_COLUMNS = {k.name: {c.key: c for c in k.columns} for k in KINDS.values()}
# the order in which kinds are written (references point to earlier kinds)
WRITE_ORDER = (
    "customers",
    "contacts",
    "invoices",
    "payments",
    "credit_notes",
    "promises",
    "disputes",
    "instalment_plans",
)


def kind_of_name(name: str) -> str | None:
    """A file or sheet name → its kind: customers.csv, 客户.csv, Invoices, 发票 …"""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].strip().lower().replace("-", "_").replace(" ", "_")
    for kind in KINDS.values():
        if stem in (kind.name, kind.name.rstrip("s"), kind.zh) or stem.endswith("_" + kind.name):
            return kind.name
    return None


def header_index(kind: Kind) -> dict[str, str]:
    """Every accepted header (lower-case) → the field key."""
    out = {}
    for c in kind.columns:
        for name in (c.key, c.zh, *c.aliases):
            out[name.strip().lower()] = c.key
    return out

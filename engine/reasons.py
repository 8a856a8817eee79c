"""Structured reasons and their messages in a locale.

A reason in a decision is data: `{"rule", "family", "values"}` plus, for the engine's own reasons,
`"key"`, a message of the catalogue below. A reason without `key` is a policy rule's: its message is
the rule's `message` (English) or `message_zh` (Chinese) template. `values` holds what the reason
compared, as plain JSON: amounts in integer minor units, percentages in basis points, counts, days,
labels, ISO dates; a policy rule's reason has the fact fields its condition and its templates use.

The message is rendered when the decision is read (`render`), in the reader's locale: "en" gives,
byte for byte, the text the evaluator wrote before reasons became structured (tests/test_golden_decisions.py
checks this on every evaluation the tests make), "zh" the Chinese one.
"""
from __future__ import annotations

import string

from rules.fields import FIELDS, PERCENT, show
from rules.money import minor_display, minor_str

LOCALES = ("en", "zh")
DEFAULT_LOCALE = "en"

# how a value is shown; a value not named in an entry's kinds is shown with str()
M, P, BP = "money", "percent", "bp"      # minor units → '1,234.56'; basis points → '30%'; basis points → '90.05'


# the expression that shows a value of each kind in a compiled template (Entry.compile)
_SHOWN = {M: '_md(v["{name}"], exp)', P: '_show(_PCT, v["{name}"], exp)', BP: '_ms(v["{name}"], 2)',
          None: 'v["{name}"]'}
_GLOBALS = {"_md": minor_display, "_ms": minor_str, "_show": show, "_PCT": PERCENT}


def _field_value(values, exp):
    """A fact field's value shown as its kind (the field named by values['field'] or ['factor'])."""
    name = values.get("field") or values.get("factor")
    return show(FIELDS[name].kind, values["value"], exp)


class Entry:
    """One message of the catalogue: a template per locale over the values, `kinds` saying how a value is
    shown (money, percent, basis points; others as str()), `{rule}` the reason's rule id, and `prepare`
    (optional) giving the derived parts named in `derived`: prepare(values, exp, locale) → dict.

    Each template is compiled once, at import, into one function with one f-string (rendering is on the
    read path of every decision): render_fn[locale](rule, values, exp) → text."""

    __slots__ = ("templates", "kinds", "prepare", "derived", "render_fn")

    def __init__(self, en: str, zh: str, kinds: dict | None = None, prepare=None, derived: tuple = ()):
        self.templates = {"en": en, "zh": zh}
        self.kinds = dict(kinds or {})
        self.prepare, self.derived = prepare, frozenset(derived)
        self.render_fn = {locale: self.compile(locale) for locale in LOCALES}

    def compile(self, locale: str):
        parts = []
        for literal, name, spec, conversion in string.Formatter().parse(self.templates[locale]):
            parts.append(literal.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}").replace("'", "\\'")
                         .replace("\n", "\\n"))
            if name is None:
                continue
            if spec or conversion or not name.isidentifier():
                raise ValueError(f"catalogue template {self.templates[locale]!r}: plain {{name}} placeholders only")
            if name == "rule":
                parts.append("{rule}")
            elif name in self.derived:
                parts.append('{p["%s"]}' % name)
            else:
                parts.append("{" + _SHOWN[self.kinds.get(name)].format(name=name) + "}")
        prepare = f"    p = _prepare(v, exp, {locale!r})\n" if self.prepare is not None else ""
        code = f"def render(rule, v, exp):\n{prepare}    return f'{''.join(parts)}'\n"
        scope = dict(_GLOBALS, _prepare=self.prepare)
        exec(compile(code, f"<reason message {locale}>", "exec"), scope)          # noqa: S102 — our own templates
        return scope["render"]

    def render(self, rule: str, values: dict, exp: int, locale: str) -> str:
        return self.render_fn[locale](rule, values, exp)


# the names a Chinese reader reads for the classes and fields the engine's reasons name
NAMES_ZH = {"amount_tier": "金额等级", "aging_bucket": "账龄段", "reputation": "信誉", "outstanding": "未结余额",
            "max_days_overdue": "最长逾期天数", "credit_score": "信用评分", "on_time_ratio": "按时付款比例",
            "avg_days_late": "平均逾期天数", "years_as_customer": "合作年数", "broken_promises": "违约次数",
            "external_rating": "外部评级"}


def _name_zh(name):
    return NAMES_ZH.get(name, name)


def _factor(values, exp, locale):
    out = {"factor": values["factor"] if locale == "en" else _name_zh(values["factor"])}
    if "value" in values:
        out["value"] = _field_value(values, exp)
    return out


def _bounds(values, exp, locale):
    kind = FIELDS[values["field"]].kind
    parts = []
    if values["low"] is not None:
        parts.append(f"≥ {show(kind, values['low'], exp)}")
    if values["high"] is not None:
        parts.append(f"≤ {show(kind, values['high'], exp)}")
    if locale == "en":
        return {"value": _field_value(values, exp), "bounds": " and ".join(parts), "class": values["class"],
                "field": values["field"]}
    return {"value": _field_value(values, exp), "bounds": " 且 ".join(parts), "class": _name_zh(values["class"]),
            "field": _name_zh(values["field"])}


_SOURCES_ZH = {"payment": "付款", "credit_note": "贷项通知单"}
_PAUSES_ZH = {"dispute": "发票有争议", "promise": "有未到期的付款承诺", "instalment_plan": "在分期还款计划中"}
_BREACHES_ZH = {"promise": "付款承诺", "instalment_plan": "分期还款计划"}
_OPTIONS_ZH = {"instalments": "分期期数", "deferral": "延期天数"}


def _words(name, zh_map):
    """A code shown as words: 'credit_note' → 'credit note' in English, its Chinese name in Chinese."""
    def prepare(values, exp, locale):
        code = values[name]
        return {name: code.replace("_", " ") if locale == "en" else zh_map.get(code, code)}
    return prepare


def _granted(values, exp, locale):
    by, until = values["granted_by"], values["until"]
    if locale == "en":
        return {"by": f" by {by}" if by else "", "until": f" until {until}" if until else ""}
    return {"by": f"（授予人 {by}）" if by else "", "until": f"，有效期至 {until}" if until else ""}


_LIMIT_FIGURES = {"exposure": M, "order_amount": M, "exposure_after_order": M, "credit_limit": M}

CATALOGUE: dict[str, Entry] = {
    "score.manual": Entry(
        "credit score {score} set on the credit file (manual assessment)",
        "信用评分 {score}，由信用档案设定（人工评估）"),
    "score.factor": Entry(
        "{factor} {value}: {points} points", "{factor} {value}：{points} 分", prepare=_factor,
        derived=("factor", "value")),
    "score.factor_missing": Entry("no data: {points} points", "{factor} 无数据：{points} 分", prepare=_factor,
                                  derived=("factor",)),
    "score.total": Entry(
        "scorecard total {total} (clamped to {low}–{high})", "评分卡合计 {total}（限定在 {low}–{high} 之间）"),
    "classification.band": Entry(
        "{class} = {band}: {field} {value} ({bounds})", "{class} = {band}：{field} {value}（{bounds}）",
        prepare=_bounds, derived=("class", "field", "value", "bounds")),
    "credit.unapplied_cash": Entry(
        "unapplied {source} {source_id} of {source_date}: {amount} applied to invoice {invoice_id} on its issue "
        "{applied_on} (oldest open invoice first)",
        "未核销的{source} {source_id}（{source_date}）：{amount} 在发票 {invoice_id} 开具当日 {applied_on} 冲抵该发票"
        "（先冲最早的未结发票）",
        {"amount": M}, _words("source", _SOURCES_ZH), ("source",)),
    "dunning.pause": Entry(
        "collection of invoice {invoice_id} paused: {pause}", "发票 {invoice_id} 的催收已暂停：{pause}",
        prepare=lambda values, exp, locale: {
            "pause": values["pause"] if locale == "en" else _PAUSES_ZH.get(values["pause"], values["pause"])},
        derived=("pause",)),
    "dunning.pause_legal": Entry(
        "collection of invoice {invoice_id} paused: legal case {case_id} ({status}) holds it: collection is with "
        "the legal team (法务)",
        "发票 {invoice_id} 的催收已暂停：法律案件 {case_id}（{status}）处理中，催收由法务负责"),
    "dunning.breach": Entry(
        "{kind} {id} broken on {on}: collection resumes", "{kind} {id} 于 {on} 违约：恢复催收",
        prepare=_words("kind", _BREACHES_ZH), derived=("kind",)),
    "segments.limit": Entry(
        "segment {rule}: limit capped at {limit} (limit rules: {was})", "客户分群 {rule}：额度上限 {limit}（额度规则：{was}）",
        {"limit": M, "was": M}),
    "segments.deposit": Entry(
        "segment {rule}: deposit {deposit_pct} on new orders (limit rules: {was})",
        "客户分群 {rule}：新订单保证金 {deposit_pct}（额度规则：{was}）", {"deposit_pct": P, "was": P}),
    "segments.terms": Entry(
        "segment {rule}: terms {terms_days} days (limit rules: {was} days)",
        "客户分群 {rule}：账期 {terms_days} 天（额度规则：{was} 天）"),
    "segments.cadence": Entry(
        "segment {rule}: stage {stage} actions every {cadence_days} days (policy: {policy_days})",
        "客户分群 {rule}：第 {stage} 阶段每 {cadence_days} 天执行一次催收动作（策略：{policy_days} 天）"),
    "segments.channel": Entry(
        "segment {rule}: {action} by {channel} instead of {instead_of}",
        "客户分群 {rule}：{action} 改用 {channel}，而非 {instead_of}"),
    "segments.repayment": Entry(
        "segment {rule}: {option} up to {up_to} (repayment rules: {was})",
        "客户分群 {rule}：{option}最多 {up_to}（还款规则：{was}）",
        prepare=lambda values, exp, locale: {
            "option": values["option"] if locale == "en" else _OPTIONS_ZH.get(values["option"], values["option"])},
        derived=("option",)),
    "credit.granted_limit": Entry(
        "limit granted on the credit file{by}{until}: {limit} in place of the policy's {policy_limit}",
        "信用档案上授予的额度{by}{until}：{limit}，取代策略额度 {policy_limit}",
        {"limit": M, "policy_limit": M}, _granted, ("by", "until")),
    "credit.approved_limit": Entry(
        "approved limit on the credit file {approved_limit}; policy limit {policy_limit}: the lower applies",
        "信用档案上的核定额度 {approved_limit}；策略额度 {policy_limit}：取较低者",
        {"approved_limit": M, "policy_limit": M}),
    "credit.approved_terms": Entry(
        "approved terms on the credit file: {terms_days} days", "信用档案上的核定账期：{terms_days} 天"),
    "credit.terms_exceeded": Entry(
        "invoice {invoice_id} is due {days} days after its issue ({issued_on} → {due_on}), beyond the customer's "
        "terms of {terms_days} days",
        "发票 {invoice_id} 在开具 {days} 天后到期（{issued_on} → {due_on}），超出客户 {terms_days} 天的账期"),
    "credit.tolerance": Entry(
        "{set_aside} set aside: overdue {overdue_amount} is below the credit check's tolerance {tolerance}",
        "{set_aside} 不适用：逾期金额 {overdue_amount} 低于信用检查的容差 {tolerance}",
        {"overdue_amount": M, "tolerance": M}),
    "dunning.tolerance": Entry(
        "collectable overdue {amount} is below stage {stage}'s minimum balance {min_balance} (tolerance): "
        "stage {stage} not entered",
        "可催收逾期金额 {amount} 低于第 {stage} 阶段的最低余额 {min_balance}（容差）：不进入第 {stage} 阶段",
        {"amount": M, "min_balance": M}),
    "credit.within_limit": Entry(
        "within the limit: exposure {exposure} + order {order_amount} = {exposure_after_order} ≤ limit "
        "{credit_limit}",
        "在额度内：占用 {exposure} + 订单 {order_amount} = {exposure_after_order} ≤ 额度 {credit_limit}",
        _LIMIT_FIGURES),
    "credit.over_limit_allowed": Entry(
        "exposure {exposure} + order {order_amount} = {exposure_after_order} > limit {credit_limit}, and no rule "
        "of the policy rejects or refers that",
        "占用 {exposure} + 订单 {order_amount} = {exposure_after_order} > 额度 {credit_limit}，但策略中没有规则因此拒绝或转审",
        _LIMIT_FIGURES),
    "credit.utilisation": Entry(
        "utilisation after the order {utilisation_after_order}% of the limit",
        "下单后额度使用率 {utilisation_after_order}%", {"utilisation_after_order": BP}),
    "credit.overdue_allowed": Entry(
        "overdue {overdue_amount}, the oldest {max_days_overdue} days ({aging_bucket} bucket), collection stage "
        "{dunning_stage}: no rule rejects or refers the order for it",
        "逾期 {overdue_amount}，最久 {max_days_overdue} 天（{aging_bucket} 账龄段），催收阶段 {dunning_stage}："
        "没有规则因此拒绝或转审该订单",
        {"overdue_amount": M}),
    "credit.nothing_overdue": Entry("nothing overdue", "无逾期"),
    "dunning.held": Entry(
        "every overdue invoice is paused: stage {stage} is held until collection resumes",
        "所有逾期发票的催收均已暂停：保持第 {stage} 阶段，直至恢复催收"),
    "dunning.step": Entry(
        "target stage {target}, but a customer moves one stage at a time: stage {previous} → {stage}",
        "目标阶段 {target}，但客户每次只前进一个阶段：第 {previous} → {stage} 阶段"),
    "interest.late": Entry(
        "invoice {invoice_id}: {base} × {daily_rate} × {chargeable_days} days ({days_overdue} overdue − "
        "{grace_days} grace) = {interest}",
        "发票 {invoice_id}：{base} × {daily_rate} × {chargeable_days} 天（逾期 {days_overdue} 天 − 宽限 {grace_days} 天）"
        "= {interest}",
        {"base": M, "interest": M}),
}


def normal_locale(value) -> str:
    """'zh', 'zh-CN', 'zh_Hans' … → 'zh'; anything else (None, 'en-GB', 'fr') → 'en'."""
    if value and str(value).strip().lower()[:2] == "zh":
        return "zh"
    return DEFAULT_LOCALE


_COMPILED = {locale: {key: entry.render_fn[locale] for key, entry in CATALOGUE.items()} for locale in LOCALES}


def message(reason: dict, policy, locale: str = DEFAULT_LOCALE) -> str:
    """The text of one structured reason in `locale`, from the catalogue or the policy's rule templates."""
    return render_reasons([reason], policy, locale)[0]["message"]


def render_reasons(reasons, policy, locale: str = DEFAULT_LOCALE, family: str | None = None) -> list[dict]:
    """Structured reasons as readers see them: [{"rule", "family", "message"}] (of one family if given)."""
    exp = policy.exponent
    catalogue = _COMPILED[locale]
    templates = policy.messages_zh if locale == "zh" else policy.messages
    out = []
    for r in reasons:
        if family is not None and r["family"] != family:
            continue
        values, key = r["values"], r.get("key")
        if key is not None:
            text = catalogue[key](r["rule"], values, exp)
        else:          # a policy rule's template (the anchor invoice is the template's `extra`, as when evaluated)
            text = templates[r["rule"]].render(
                values, {"anchor_invoice": values["anchor_invoice"]} if "anchor_invoice" in values else None)
        out.append({"rule": r["rule"], "family": r["family"], "message": text})
    return out


def render(body: dict, policy, locale: str = DEFAULT_LOCALE) -> dict:
    """A decision body with structured reasons as readers see it: every reason and alert with its message.
    In English this is, byte for byte once serialised, the decision of format 1 (before structured reasons)."""
    reasons = render_reasons(body["reasons"], policy, locale)
    out = dict(body)
    out.pop("format", None)
    out["reasons"] = reasons
    if body["alerts"]:
        # an alert's message is its rule's reason (the evaluator lists every alert that fired among the reasons)
        said = {r["rule"]: r["message"] for r in reasons if r["family"] == "alerts"}
        out["alerts"] = [{**a, "message": said[a["id"]]} for a in body["alerts"]]
    return out

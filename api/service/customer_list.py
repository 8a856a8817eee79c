"""The customer list: search, filters, sort and keyset pagination over stored, indexed columns only, shared
by GET /v1/customers and the console (api/reports/console.customers).

- search `q`: the id itself, an id starting with q (a range of the primary key), or a name containing q. On
  SQLite a term of 3 or more characters is looked up in the FTS5 trigram table `customer_search` (migration
  0020) and the candidates re-checked with the scan's predicate; a common term (more than RARE hits) is the
  scan, which fills a page after a few rows; on PostgreSQL ILIKE, served by the pg_trgm GIN index. A 1–2
  character term (no trigram) is the scan. The re-check makes the indexed answer the scan's, exactly:
  name matching is case-insensitive for ASCII letters on SQLite (LIKE), for every cased letter on PostgreSQL.
- filters: bucket, tier, reputation, stage (the last recorded decision's: customers.last_*), segment
  (customer_segments), collector, hold (a credit hold in force today, the customer's own or its group's):
  each an index range ordered by id.
- sort: id, name, outstanding, stage, ascending or descending, ties broken by id; `cursor` continues after
  the last row of a page (a keyset: the same cost at any depth, stable under filters). For sort=id the cursor
  is the last id (as before); otherwise an opaque token of (sort, value, id).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import unicodedata

from sqlalchemy import and_, func, literal_column, not_, or_, select, text, tuple_
from sqlalchemy.orm import aliased

from rules.money import minor_str

from ..errors import invalid
from ..store.tables import CreditHold, Customer, CustomerSegment, GroupHold, GroupMember

SORTS = {"id": Customer.id, "name": Customer.name, "outstanding": Customer.last_outstanding_minor,
         "stage": Customer.last_stage}
FILTERS = ("bucket", "tier", "reputation", "stage", "segment", "collector", "hold")
LIMIT_MAX = 200
COUNT_CAP = 10_000            # a count stops here: a page never reads the whole book to say how many match
TRIGRAM = 3
_MAX_CHAR = "\U0010ffff"
_CLASSES = {"bucket": "aging_bucket", "tier": "amount_tier", "reputation": "reputation"}


def validate(policy, raw: dict) -> dict:
    """The list's arguments as given (strings; absent or "" = not set) → typed, or 422 naming each bad one:
    bucket / tier / reputation one of the active policy's labels, stage 0–99, hold yes/no, sort, dir."""
    errors, out = {}, {}
    for key in ("q", "segment", "collector", "cursor"):
        value = (raw.get(key) or "").strip() or None
        if value is not None and len(value) > (512 if key == "cursor" else 128):
            errors[key] = [f"at most {512 if key == 'cursor' else 128} characters"]
        out[key] = value
    for key, cls in _CLASSES.items():
        value = (raw.get(key) or "").strip() or None
        labels = list(policy.band_classes[cls].labels)
        if value is not None and value not in labels:
            errors[key] = [f"one of {', '.join(labels)}"]
        out[key] = value
    stage = (raw.get("stage") or "").strip()
    out["stage"] = None
    if stage:
        if not (stage.isascii() and stage.isdigit() and int(stage) <= 99):
            errors["stage"] = ["a whole number from 0 to 99"]
        else:
            out["stage"] = int(stage)
    hold = (raw.get("hold") or "").strip() or None
    if hold not in (None, "yes", "no"):
        errors["hold"] = ["yes or no"]
    out["hold"] = hold
    out["sort"] = (raw.get("sort") or "").strip() or "id"
    if out["sort"] not in SORTS:
        errors["sort"] = [f"one of {', '.join(SORTS)}"]
    direction = (raw.get("dir") or "").strip() or "asc"
    if direction not in ("asc", "desc"):
        errors["dir"] = ["asc or desc"]
    out["desc"] = direction == "desc"
    if out["cursor"] and "sort" not in errors and "cursor" not in errors:
        try:
            out["after"] = decode_cursor(out["sort"], out["cursor"])
        except ValueError:
            errors["cursor"] = ["not a cursor of this list (sort changed?): start again without it"]
    if errors:
        raise invalid(errors)
    return out


def encode_cursor(sort: str, value, customer_id: str) -> str:
    if sort == "id":
        return customer_id
    raw = json.dumps([sort, value, customer_id], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple:
    if sort == "id":
        return (None, cursor)
    try:
        got = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if not (isinstance(got, list) and len(got) == 3 and got[0] == sort and isinstance(got[2], str)
            and isinstance(got[1], str if sort == "name" else int) and not isinstance(got[1], bool)):
        raise ValueError(cursor)
    return got[1], got[2]


def _like(text_: str) -> str:
    return "%" + text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


RARE = 2_000                  # SQLite: a term with at most this many trigram hits is looked up; more, scanned
WINDOW = 2_000                # PostgreSQL: a search first reads this many rows in the list's order (below)
COUNT_WALK = 3 * COUNT_CAP    # …and a term that filled its page from them is counted from this many rows
PLANS = ("auto", "window", "direct")


def _uncased(q: str) -> bool:
    """No character of q has a case (CJK and other letters without case, digits, punctuation, spaces): ILIKE's
    lower() of a name can then only match q where the name has q itself, so LIKE is the same match without
    lower-casing every name it reads (PostgreSQL; several times cheaper per row). Unassigned characters (a
    newer Unicode than Python's) count as cased."""
    return all(unicodedata.category(ch) == "Lo" or (ch.isascii() and not ch.isalpha())
               or unicodedata.category(ch)[0] in "PZ" for ch in q)


def _scan(q: str, dialect: str, c, indexed: bool):
    if dialect == "postgresql":
        if indexed and _uncased(q):
            return c.name.like(_like(q), escape="\\")          # pg_trgm's GIN index serves LIKE too
        return c.name.ilike(_like(q), escape="\\")             # pg_trgm's GIN index serves it (3+ characters)
    if not any(ch.isascii() and ch.isalpha() for ch in q):
        # no letter LIKE would fold: instr() is the same match, a plain substring search several times cheaper
        return func.instr(c.name, q) > 0
    return c.name.like(_like(q), escape="\\")


def name_matches(s, q: str, dialect: str, indexed: bool = True, c=Customer):
    """A name containing q. `indexed=False`: the plain scan, which the indexed answer must equal."""
    scan = _scan(q, dialect, c, indexed)
    if dialect != "sqlite" or not indexed or len(q) < TRIGRAM or c is not Customer:
        return scan
    # the trigram table's hits in rowid order, stopped after RARE: a rare term's few candidates (re-checked by
    # the scan's predicate) are looked up by rowid; a common one is a scan that fills a page after a few rows
    phrase = '"' + q.replace('"', '""') + '"'          # one FTS5 string: the substring, no query syntax
    hits = s.execute(text("SELECT rowid FROM customer_search WHERE customer_search MATCH :p LIMIT :n"),
                     {"p": phrase, "n": RARE + 1}).scalars().all()
    if len(hits) > RARE:
        return scan
    return and_(literal_column("customers.rowid").in_(hits), scan)


def matches(s, q: str, dialect: str, indexed: bool = True, c=Customer):
    """The search `q` over the customers `c` (the table, or a window of it: the name's scan predicate)."""
    return or_(c.id == q, and_(c.id >= q, c.id < q + _MAX_CHAR), name_matches(s, q, dialect, indexed, c))


def _filters(f: dict, today: dt.date) -> list:
    """Every filter but the search."""
    conds = []
    for key, col in (("bucket", Customer.last_bucket), ("tier", Customer.last_tier),
                     ("reputation", Customer.last_reputation), ("stage", Customer.last_stage),
                     ("collector", Customer.collector)):
        if f.get(key) is not None:
            conds.append(col == f[key])
    if f.get("segment"):
        conds.append(Customer.id.in_(select(CustomerSegment.customer_id)
                                     .where(CustomerSegment.segment == f["segment"])))
    if f.get("hold"):
        held, group_held = _held(today)
        on = or_(Customer.id.in_(held), Customer.id.in_(group_held))
        conds.append(on if f["hold"] == "yes" else not_(on))
    return conds


def _filtered(s, f: dict, dialect: str, today: dt.date, indexed: bool):
    conds = _filters(f, today)
    if f.get("q"):
        conds.append(matches(s, f["q"], dialect, indexed))
    return conds


def _held(today: dt.date):
    """(customers on a credit hold in force today, members of a group whose hold is in force today): selects."""
    own = select(CreditHold.customer_id).where(CreditHold.placed_on <= today,
                                               or_(CreditHold.until.is_(None), CreditHold.until >= today))
    group = (select(GroupMember.customer_id).join(GroupHold, GroupHold.group_id == GroupMember.group_id)
             .where(GroupHold.placed_on <= today, or_(GroupHold.until.is_(None), GroupHold.until >= today)))
    return own, group


def _order(c, sort: str, desc: bool) -> list:
    col, key = getattr(c, SORTS[sort].key), c.id
    order = [col.desc(), key.desc()] if desc else [col, key]
    return order[1:] if sort == "id" else order


def _after(sort: str, desc: bool, after) -> list:
    if after is None:
        return []
    value, last_id = after
    if sort == "id":
        return [Customer.id < last_id if desc else Customer.id > last_id]
    key, bound = tuple_(SORTS[sort], Customer.id), tuple_(value, last_id)
    return [key < bound if desc else key > bound]


def _window_page(s, q: str, dialect: str, indexed: bool, base: list, sort: str, desc: bool, n: int):
    """The first n matches of the search among the first WINDOW rows (in the list's order, after the cursor)
    that pass the other filters, or None when the window holds fewer than n matches and is not the whole rest
    of the list. Those n are then the list's first n: a window is a prefix of the list's order, and the
    search only drops rows from it. A common term (a page within a few hundred rows) costs one short walk of
    the sort's index (or the filter's), where the trigram index would collect every match before the sort;
    a rare term falls through to the trigram index after one bounded walk. The window's last row is read
    too, match or not (its number is WINDOW): without it the window ended the list. Returns (rows or None,
    how many of the rows the name matched: an id prefix is dense in id order only, not in the book)."""
    rn = func.row_number().over(order_by=_order(Customer, sort, desc)).label("rn")
    inner = select(Customer, rn).where(*base).order_by(*_order(Customer, sort, desc)).limit(WINDOW).subquery()
    w = aliased(Customer, inner)
    hit = matches(s, q, dialect, indexed, w)
    got = s.execute(select(w, inner.c.rn, hit.label("hit"), name_matches(s, q, dialect, indexed, w).label("named"))
                    .where(or_(hit, inner.c.rn == WINDOW)).order_by(*_order(w, sort, desc)).limit(n + 1)).all()
    hits = [row for row in got if row.hit][:n]
    if len(hits) < n and any(row.rn == WINDOW for row in got):
        return None, 0
    return [row[0] for row in hits], sum(1 for row in hits if row.named)


def _count_walk(s, f: dict, dialect: str, today: dt.date, indexed: bool) -> int | None:
    """The capped count of a term whose page a window held, read off the first COUNT_WALK rows that pass the
    other filters (in any order: a sequential read), or None when that is not the answer (fewer than the cap
    among them and more rows after). The search is tested in the select list under a LIMIT, where the
    planner cannot take it to the trigram index: a 95 % term is counted from ~COUNT_WALK rows where the
    index's bitmap holds every match before the first is counted. A window can be dense where the book is
    not (an id prefix, a name prefix under sort=name): then the walk was one bounded read, and the count is
    the index's."""
    hit = matches(s, f["q"], dialect, indexed).label("hit")
    walked = select(hit).where(*_filters(f, today)).limit(COUNT_WALK).subquery()
    hits, seen = s.execute(select(func.count().filter(walked.c.hit), func.count()).select_from(walked)).one()
    return hits if hits > COUNT_CAP or seen < COUNT_WALK else None


def search(ctx, f: dict, *, limit: int = 50, count: bool = False, indexed: bool = True,
           plan: str = "auto") -> dict:
    """One page of customers matching the validated filters `f` (validate()): {rows, next_cursor[, total,
    total_capped]}. Each row: the Customer and whether a hold is in force. `plan` (the same rows whichever):
    "auto" = a search on PostgreSQL reads a window of the list's order first (_window_page), else one query;
    "window" = the window first on any database; "direct" = one query (the planner's choice)."""
    if plan not in PLANS:
        raise ValueError(plan)
    sort, desc = f.get("sort", "id"), f.get("desc", False)
    col = SORTS[sort]
    today = ctx.today()
    with ctx.read_tx() as s:
        dialect = s.get_bind().dialect.name
        after = f.get("after")
        rows, dense = None, False
        if f.get("q") and (plan == "window" or plan == "auto" and dialect == "postgresql"):
            base = _filters(f, today) + _after(sort, desc, after)
            rows, named = _window_page(s, f["q"], dialect, indexed, base, sort, desc, limit + 1)
            # a window held the page, most of it by name: a common term, whose count may be a short walk
            dense = rows is not None and len(rows) > limit and 2 * named > len(rows)
        if rows is None:
            conds = _filtered(s, f, dialect, today, indexed) + _after(sort, desc, after)
            rows = s.execute(select(Customer).where(*conds).order_by(*_order(Customer, sort, desc))
                             .limit(limit + 1)).scalars().all()
        page, more = rows[:limit], len(rows) > limit
        held = set()
        if page:
            ids = [c.id for c in page]
            own, group_held = _held(today)
            held = set(s.execute(own.where(CreditHold.customer_id.in_(ids))).scalars())
            held |= set(s.execute(group_held.where(GroupMember.customer_id.in_(ids))).scalars())
        out = {"rows": [(c, c.id in held) for c in page], "next_cursor": None}
        if more:
            last = page[-1]
            out["next_cursor"] = encode_cursor(sort, getattr(last, col.key), last.id)
        if count:
            if after is None and not more:
                total = len(page)                   # the first page is the last: it saw every match
            elif dense and (walked := _count_walk(s, f, dialect, today, indexed)) is not None:
                total = walked
            else:
                matching = _filtered(s, f, dialect, today, indexed)
                capped = select(Customer.id).where(*matching).limit(COUNT_CAP + 1).subquery()
                total = s.execute(select(func.count()).select_from(capped)).scalar_one()
            out["total"], out["total_capped"] = min(total, COUNT_CAP), total > COUNT_CAP
        exponent = ctx.registry.active(s).exponent
        for c, _ in out["rows"]:
            s.expunge(c)
    out["exponent"] = exponent
    return out


def summary_dict(c: Customer, held: bool, exponent: int) -> dict:
    """The last recorded decision's classification as the list shows it (None before the first decision)."""
    if c.last_as_of is None:
        return {"last_decision": None, "on_hold": held}
    return {"on_hold": held, "last_decision": {
        "as_of": c.last_as_of.isoformat(), "aging_bucket": c.last_bucket, "amount_tier": c.last_tier,
        "reputation": c.last_reputation, "stage": c.last_stage, "segments": list(c.last_segments or []),
        "outstanding": minor_str(c.last_outstanding_minor or 0, exponent), "credit_score": c.last_score}}

"""An import: validate every file completely, then write, then decide once per customer touched.

1. Validate: every row of every table (kinds in WRITE_ORDER, so references resolve to rows before
   them) is read, converted and checked with the same schemas and policy checks as the events
   (engine/facts.py, the active policy's categories and currency); every bad cell becomes
   `FILE:ROW:COLUMN: CODE: message`. No date of what has happened may be after the import's as_of, and a
   customers row is compared with its stored file: a decision field is back office's to set only as the HTTP
   allows (E_DECISION_FIELD), a controller's change of one needs the import's reason. Nothing is written when
   any row is bad, unless skip_invalid, which writes the good rows and hands back the rejected ones (as CSV).
   Rows are checked in chunks (CHUNK): what must be remembered across rows — natural keys seen, the
   customers and invoices the import holds, primary contacts, rejected rows — is in a temporary SQLite
   spool (spool.py), so the memory does not grow with the book.
2. Write: the good rows, spooled (pickled) during validation, are read back and written in batches by natural
   key: a new row is inserted, a changed one updated (and counted as such), an equal one left alone,
   so importing the same files twice changes nothing. The customers touched go to the spool.
   A controller's change of an existing file's decision fields is a credit_file_change record.
3. Decide: every customer with a new or changed row gets one decision (`kind: import`, request id
   the import id) in its hash chain, in groups streamed from the spool in id order; customers.last_*
   follow, as after any decision.
The import run itself (files and their sha256, counts, errors, actor) is a row of `imports`.
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import itertools
import pickle
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from marshmallow import ValidationError
from sqlalchemy import bindparam, func, insert, select, update

from engine.decision import canonical_json
from engine.errors import EngineFailure, InputInvalid
from engine.evaluator import evaluate_loaded_with_facts
from engine.facts import (
    CATEGORY_OF,
    CreditNoteSchema,
    CustomerSchema,
    DisputeSchema,
    InstalmentPlanSchema,
    InvoiceSchema,
    PaymentSchema,
    PromiseSchema,
    flatten_messages,
)
from rules.money import parse_amount, to_minor

from ...errors import DomainError
from ...reports import figures
from ...reports.book import Bands
from ...service.contacts import ContactSchema
from ...service.customers import DECIDING_ROLES, DECISION_FIELDS, SEGMENT_FIELDS, record_decision_changes
from ...service.decide import remember_last_evaluations, summary_of
from ...service.validation import DATE_MAX, DATE_MIN
from ...store import trail
from ...store.ledger import load_cases
from ...store.tables import (
    Contact,
    CreditNote,
    Customer,
    Dispute,
    ImportRun,
    InstalmentPlan,
    Invoice,
    Payment,
    Promise,
)
from .columns import KINDS, WRITE_ORDER, Kind, header_index
from .reader import ImportFileError, Source, Table, file_sha256, tables
from .spool import Spool, key_text

MAX_ERRORS = 200          # reported; counting goes on
BATCH = 2000              # rows per write transaction
DECIDE_GROUP = 250        # customers per decision transaction
KIND = "import"
_INT = re.compile(r"-?[0-9]{1,9}")
_DATE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_TRUE, _FALSE = {"true", "1", "yes", "y", "是", "x"}, {"false", "0", "no", "n", "否", ""}


_SCHEMAS = {"customers": CustomerSchema(), "contacts": ContactSchema(), "invoices": InvoiceSchema(),
            "payments": PaymentSchema(), "credit_notes": CreditNoteSchema(), "promises": PromiseSchema(), "disputes": DisputeSchema(),
            "instalment_plans": InstalmentPlanSchema()}
# fields a row carries besides what the engine's schema validates
_OUTSIDE_SCHEMA = {"invoices": ("customer_id", "order_id"), "payments": ("customer_id",), "credit_notes": ("customer_id",),
                   "promises": ("customer_id",), "disputes": ("customer_id",), "instalment_plans": ("customer_id",)}
# dates of what has already happened: none may be after the import's as_of (a payment not yet received is a
# promise, a customer not yet a customer; the HTTP refuses paid_on and since alike, E_INPUT_INVALID).
# Due dates, promised_on and instalment dates look ahead and may.
NOT_AFTER_AS_OF = {"customers": ("since", "last_reviewed_on"), "invoices": ("issued_on",), "payments": ("paid_on",),
                   "credit_notes": ("issued_on",), "promises": ("made_on",), "disputes": ("opened_on", "resolved_on"),
                   "instalment_plans": ("agreed_on",)}
INPUT_CODE = "E_INPUT_INVALID"           # the HTTP's code for the same refusals (a future date, no reason)
# a customers row's decision field as stored: approved_limit is kept in minor units
_STORED_AS = {"approved_limit": "approved_limit_minor"}
_DECISION_COLUMNS = (Customer.id, *(getattr(Customer, _STORED_AS.get(f, f)) for f in DECISION_FIELDS))
# the ids of an IN (...) passed at execution, not built into the statement: a statement's literal IN list is
# held by a reference cycle (its BindParameter) until a full garbage collection, thousands of ids per batch
_IDS = bindparam("ids", expanding=True)
CHUNK = 1000                             # rows checked together (duplicates, references, stored files)


@dataclass(frozen=True)
class Rules:
    """What an import is checked against besides its cells: its as_of (no past event after it), the
    importer's role (None: the operator's CLI, which may do what a controller does) and the reason
    a change of an existing credit file's decision fields is recorded with."""
    as_of: dt.date
    role: str | None = None
    reason: str | None = None

    @property
    def decides(self) -> bool:
        return self.role is None or self.role in DECIDING_ROLES


@dataclass
class Counts:
    rows: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Validation:
    errors: list = field(default_factory=list)            # the first MAX_ERRORS
    error_count: int = 0
    counts: dict = field(default_factory=dict)            # kind → Counts
    # every per-row fact (keys seen, the customers and invoices held, rejected rows, customers written) is
    # on disk, so the import's memory does not grow with the book
    spool: Spool = field(default_factory=Spool)

    def add(self, e: ImportFileError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(str(e))
        self.spool.reject(e.file, e.row, str(e))


class _Row:
    """One converted row: its values by field key and the column number of each key (for errors)."""
    __slots__ = ("number", "values", "columns")

    def __init__(self, number, values, columns):
        self.number, self.values, self.columns = number, values, columns


def _convert(table: Table, kind: Kind) -> tuple[list, object]:
    """The table's header → (column keys by position, an iterator of (_Row | ImportFileError list))."""
    rows = table.open_rows()
    try:
        number, header = next(rows)
    except StopIteration:
        raise ImportFileError(table.file, 1, 1, "E_IMPORT_EMPTY", "the file has no header row") from None
    index = header_index(kind)
    keys: list = []
    problems = []
    for col, name in enumerate(header, 1):
        name = (name or "").strip()
        if not name:
            keys.append(None)
            continue
        key = index.get(name.lower())
        if key is None:
            problems.append(ImportFileError(table.file, number, col, "E_IMPORT_COLUMN",
                                            f"unknown column '{name}' for {kind.name} "
                                            f"(one of {', '.join(c.key for c in kind.columns)})"))
        elif key in keys:
            problems.append(ImportFileError(table.file, number, col, "E_IMPORT_COLUMN",
                                            f"column '{name}' repeats column {keys.index(key) + 1}"))
            key = None
        keys.append(key)
    for c in kind.columns:
        if c.required and c.key not in keys:
            problems.append(ImportFileError(table.file, number, len(header) + 1, "E_IMPORT_COLUMN",
                                            f"required column '{c.key}' ({c.zh}) is missing"))
    if problems:
        raise _HeaderErrors(problems)
    return [None if k is None else kind.column(k) for k in keys], rows


class _HeaderErrors(Exception):
    def __init__(self, errors):
        super().__init__(str(errors[0]))
        self.errors = errors


def _cells(table: Table, kind: Kind, keys: list, number: int, cells: list) -> tuple[dict, dict, list]:
    """Cells → typed values by key (None for empty), the column of each key, and conversion errors."""
    values, columns, errors = {}, {}, []
    for col, (spec, raw) in enumerate(zip(keys, cells), 1):
        if spec is None:
            continue
        key = spec.key
        columns[key] = col
        text = (raw or "").strip()
        if not text and spec.kind != "bool":
            values[key] = None
            continue
        try:
            # an amount is read as written (the one money rule: no padding either), the rest stripped
            values[key] = _typed(spec.kind, raw if spec.kind == "amount" else text)
        except ValueError as exc:
            errors.append(ImportFileError(table.file, number, col, _code_of(spec.kind), f"{spec.key} ({spec.zh}): {exc}"))
    if len(cells) > len(keys) and any((c or "").strip() for c in cells[len(keys):]):
        errors.append(ImportFileError(table.file, number, len(keys) + 1, "E_IMPORT_COLUMN",
                                      "a value beyond the last column of the header"))
    return values, columns, errors


def _code_of(kind: str) -> str:
    return {"amount": "E_AMOUNT", "date": "E_DATE", "int": "E_INVALID", "instalments": "E_INVALID"}.get(kind, "E_INVALID")


def _typed(kind: str, text: str):
    if kind == "text":
        return text
    if kind == "amount":
        parse_amount(text)                  # rules/money.py: the HTTP's rule; the schema refuses negatives
        return text
    if kind == "int":
        if not _INT.fullmatch(text):
            raise ValueError(f"'{text}' is not a whole number")
        return int(text)
    if kind == "date":
        return _date(text).isoformat()
    if kind == "list":
        return [p.strip() for p in re.split(r"[;；]", text) if p.strip()]
    if kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"'{text}' is not yes/no (true/false, 1/0, 是/否)")
    if kind == "instalments":
        out = []
        for part in (p.strip() for p in re.split(r"[;；]", text) if p.strip()):
            day, sep, amount = part.partition("=") if "=" in part else part.rpartition(":")
            if not sep:
                raise ValueError(f"'{part}' is not DATE=AMOUNT (e.g. 2026-12-31=5000.00)")
            try:
                parse_amount(amount.strip())
            except ValueError as exc:
                raise ValueError(f"'{part}': {exc}") from None
            out.append({"due_on": _date(day.strip()).isoformat(), "amount": amount.strip()})
        return out
    raise AssertionError(kind)


def _date(text: str) -> dt.date:
    m = _DATE.fullmatch(text)
    try:
        day = dt.date(int(m[1]), int(m[2]), int(m[3])) if m else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"'{text}' is not a date (YYYY-MM-DD)")
    if not DATE_MIN <= day <= DATE_MAX:
        raise ValueError(f"{day} is not between {DATE_MIN} and {DATE_MAX}")
    return day


def _check_row(table: Table, kind: Kind, number: int, values: dict, columns: dict, policy,
               rules: Rules) -> tuple[dict, list]:
    """Schema and policy checks of one converted row → (loaded row, errors)."""
    def err(key, code, message):
        col = columns.get(key.split(".")[0].split("[")[0], 1)
        return ImportFileError(table.file, number, col, code, message)

    outside = {k: values.pop(k, None) for k in _OUTSIDE_SCHEMA.get(kind.name, ())}
    payload = {k: v for k, v in values.items() if v is not None}
    try:
        loaded = _SCHEMAS[kind.name].load(payload)
    except ValidationError as exc:
        return {}, [err(e.field, e.code, f"{e.field}: {e.message}") for e in flatten_messages(exc.messages)]
    loaded.update(outside)
    errors = []
    if kind.name != "customers" and not loaded.get("customer_id"):
        errors.append(err("customer_id", "E_REQUIRED", "customer_id: required"))
    if kind.name == "customers":
        cats = policy.content["categories"]
        for key, category in CATEGORY_OF.items():
            value = loaded.get(key)
            if value is not None and value not in cats[category]:
                errors.append(err(key, "E_CATEGORY", f"{key}: '{value}' is not a {category} of the policy "
                                                      f"(one of {', '.join(cats[category])})"))
    if loaded.get("currency") not in (None, policy.currency):
        errors.append(err("currency", "E_CURRENCY", f"currency: '{loaded['currency']}' is not the policy's "
                                                    f"currency {policy.currency}"))
    for key in ("amount", "approved_limit"):
        if loaded.get(key) is not None:
            try:
                loaded[key + "_minor"] = to_minor(loaded[key], policy.exponent)
            except ValueError as exc:
                errors.append(err(key, "E_AMOUNT", f"{key}: {exc}"))
    if kind.name in ("invoices", "payments") and loaded.get("amount_minor") == 0:
        errors.append(err("amount", "E_AMOUNT", "amount: must be positive"))
    for key in NOT_AFTER_AS_OF.get(kind.name, ()):
        if loaded.get(key) is not None and loaded[key] > rules.as_of:
            errors.append(err(key, INPUT_CODE, f"{key}: {loaded[key].isoformat()} is after the import's as_of "
                                                f"({rules.as_of.isoformat()}): it has not happened yet"))
    if kind.name == "promises" and loaded["promised_on"] < loaded["made_on"]:
        errors.append(err("promised_on", "E_INVALID", "promised_on: before made_on"))
    if kind.name == "instalment_plans":
        for i, inst in enumerate(loaded["instalments"]):
            try:
                inst["amount_minor"] = to_minor(inst["amount"], policy.exponent)
            except ValueError as exc:
                errors.append(err("instalments", "E_AMOUNT", f"instalments[{i}]: {exc}"))
    return loaded, errors


def _references(table, kind, number, row, columns, customers: set, invoices: dict) -> list:
    """A row's references against the customers (ids) and invoices (id → customer id) known, the import's
    and the database's."""
    errors = []
    cid = row.get("customer_id") if kind.name != "customers" else row["id"]

    def err(key, code, message):
        return ImportFileError(table.file, number, columns.get(key, 1), code, message)
    if kind.name != "customers" and cid not in customers:
        errors.append(err("customer_id", "E_UNKNOWN_CUSTOMER", f"customer_id: no customer '{cid}' in the import "
                                                              "or the database"))
    refs = row.get("invoice_ids") if kind.name == "instalment_plans" else (
        [row["invoice_id"]] if row.get("invoice_id") else [])
    for ref in refs or ():
        owner = invoices.get(ref)
        if owner is None:
            errors.append(err("invoice_ids" if kind.name == "instalment_plans" else "invoice_id", "E_UNKNOWN_INVOICE",
                              f"no invoice '{ref}' in the import or the database"))
        elif owner != cid:
            errors.append(err("invoice_ids" if kind.name == "instalment_plans" else "invoice_id", "E_UNKNOWN_INVOICE",
                              f"invoice '{ref}' belongs to customer '{owner}', not '{cid}'"))
    return errors


def _natural_key(kind: Kind, row: dict):
    return (row["customer_id"], row["name"]) if kind.name == "contacts" else row["id"]


def _ordered(all_tables: list[Table]) -> list[tuple[Table, Kind]]:
    return sorted(((t, KINDS[t.kind]) for t in all_tables), key=lambda tk: WRITE_ORDER.index(tk[1].name))


def _iter_rows(table: Table, kind: Kind, policy, rules: Rules):
    """(number, loaded row, columns, errors) for every data row; header problems raise _HeaderErrors."""
    keys, rows = _convert(table, kind)
    for number, cells in rows:
        if not any((c or "").strip() for c in cells):
            continue                                   # blank line
        values, columns, errors = _cells(table, kind, keys, number, cells)
        loaded = {}
        if not errors:
            loaded, errors = _check_row(table, kind, number, values, columns, policy, rules)
        yield number, loaded, columns, errors


def _referenced(kind: Kind, row: dict) -> tuple[str | None, list]:
    refs = row.get("invoice_ids") if kind.name == "instalment_plans" else (
        [row["invoice_id"]] if row.get("invoice_id") else [])
    return (None if kind.name == "customers" else row.get("customer_id")), list(refs or ())


def _lookup(ctx, customer_ids: set, invoice_ids: set) -> tuple[set, dict]:
    """Of the ids the import refers to but does not hold, those already in the database."""
    known_customers, known_invoices = set(), {}
    if not customer_ids and not invoice_ids:
        return known_customers, known_invoices
    with ctx.read_tx() as s:
        ids = sorted(c for c in customer_ids if c)
        for i in range(0, len(ids), 1000):
            known_customers |= set(s.execute(select(Customer.id).where(Customer.id.in_(_IDS)),
                                             {"ids": ids[i:i + 1000]}).scalars())
        refs = sorted(invoice_ids)
        for i in range(0, len(refs), 1000):
            known_invoices.update(s.execute(select(Invoice.id, Invoice.customer_id)
                                            .where(Invoice.id.in_(_IDS)), {"ids": refs[i:i + 1000]}).all())
    return known_customers, known_invoices


def validate_files(ctx, sources: list[Source], policy, rules: Rules | None = None
                   ) -> tuple[list, _Validation, list[dict], dict]:
    """Check every table; nothing is written. Tables are read in WRITE_ORDER, so a reference to a
    customer or invoice of the import is known when the referring row is read; references to neither
    are looked up in the database after each table. Customers rows are compared with their stored files
    (the decision-field guard, _guard_customers). Each good row, converted to its table's columns,
    is spooled to a temporary file for the write pass: the files are parsed once."""
    rules = rules or Rules(ctx.today())
    v = _Validation()
    files, all_tables = [], []
    for source in sources:
        try:
            found = tables(source)
        except ImportFileError as e:
            v.add(e)
            files.append({"name": source.name, "sha256": file_sha256(source), "kinds": []})
            continue
        for t in found:
            if t.kind is None:
                v.add(ImportFileError(t.file, 1, 1, "E_IMPORT_KIND",
                                      "cannot tell what the file holds: name it customers, contacts, invoices, "
                                      "payments, credit_notes, promises, disputes or instalment_plans (or 客户, 发票 …)"))
            else:
                all_tables.append(t)
        files.append({"name": source.name, "sha256": file_sha256(source),
                      "kinds": sorted({t.kind for t in found if t.kind})})
    plan = _ordered(all_tables)
    spools: dict = {}
    try:
        for table, kind in plan:
            stats = v.counts.setdefault(kind.name, Counts())
            spool = spools[table.file] = tempfile.TemporaryFile()
            chunk: list = []                           # (number, row, columns, errors) in file order
            try:
                for item in _iter_rows(table, kind, policy, rules):
                    stats.rows += 1
                    chunk.append(item)
                    if len(chunk) >= CHUNK:
                        _check_chunk(ctx, table, kind, chunk, v, stats, spool, rules)
                _check_chunk(ctx, table, kind, chunk, v, stats, spool, rules)
            except _HeaderErrors as exc:
                for e in exc.errors:
                    v.add(e)
            except ImportFileError as e:
                _check_chunk(ctx, table, kind, chunk, v, stats, spool, rules)    # the rows before it
                v.add(e)
    except BaseException:
        for spool in spools.values():
            spool.close()
        v.spool.close()
        raise
    return plan, v, files, spools


def _check_chunk(ctx, table: Table, kind: Kind, chunk: list, v: _Validation, stats: Counts, spool,
                 rules: Rules) -> None:
    """The checks across rows of a chunk of converted rows, then each row accepted (spooled) or rejected, in file
    order: a natural key seen before (this file or an earlier one of the kind), a second primary contact per
    channel, references to customers and invoices (the import's — earlier kinds, complete by now — else the
    database's), a customers row against its stored file (_guard_errors). Empties `chunk`."""
    if not chunk:
        return
    file_no = v.spool.file_number(table.file)
    problems = [errors for _, _, _, errors in chunk]

    def good() -> list[int]:
        return [i for i, p in enumerate(problems) if not p]
    idx = good()
    keys = [_natural_key(kind, chunk[i][1]) for i in idx]
    firsts = v.spool.first_seen("seen", kind.name, [(key_text(k), file_no, chunk[i][0]) for k, i in zip(keys, idx)])
    for i, key, where in zip(idx, keys, firsts):
        if where is not None:
            number, _, columns, _ = chunk[i]
            problems[i] = [ImportFileError(table.file, number, columns.get(kind.key.split("+")[0], 1),
                                           "E_DUPLICATE_ROW", f"{kind.key} {key!r} is also on {where[0]} row {where[1]}")]
    if kind.name == "contacts":
        idx = [i for i in good() if chunk[i][1]["primary"]]
        channels = [(chunk[i][1]["customer_id"], chunk[i][1]["preferred_channel"] or "any") for i in idx]
        firsts = v.spool.first_seen("primaries", None,
                                    [(key_text(c), file_no, chunk[i][0]) for c, i in zip(channels, idx)])
        for i, channel, where in zip(idx, channels, firsts):
            if where is not None:
                number, _, columns, _ = chunk[i]
                problems[i] = [ImportFileError(table.file, number, columns.get("primary", 1), "E_INVALID",
                                               f"primary: {where[0]} row {where[1]} is already the primary "
                                               f"contact for {channel[1]}")]
    if kind.name == "customers":
        idx = good()
        for i, errors in zip(idx, _guard_errors(ctx, table, [chunk[i] for i in idx], rules)):
            problems[i] = errors
    else:
        idx = good()
        cids = {chunk[i][1]["customer_id"] for i in idx}
        refs = {ref for i in idx for ref in _referenced(kind, chunk[i][1])[1]}
        customers = v.spool.held_customers(cids)
        invoices = v.spool.held_invoices(refs)
        known_customers, known_invoices = _lookup(ctx, cids - customers, refs - invoices.keys())
        customers |= known_customers
        invoices = {**known_invoices, **invoices}       # the import's row is what the invoice will be
        for i in idx:
            number, row, columns, _ = chunk[i]
            problems[i] = _references(table, kind, number, row, columns, customers, invoices)
    held_customers, held_invoices = [], []
    for (number, row, columns, _), errors in zip(chunk, problems):
        if errors:
            stats.rejected += 1
            for e in errors:
                v.add(e)
            continue
        _accept(kind, row, spool, columns)
        if kind.name == "customers":
            held_customers.append(row["id"])
        elif kind.name == "invoices":
            held_invoices.append((row["id"], row["customer_id"]))
    v.spool.hold(held_customers, held_invoices)
    chunk.clear()


def _customer_row(row: dict, columns: dict) -> dict:
    """A customers row's table columns, without the decision fields the file has no column for."""
    out = _rows_for_table("customers", row)
    for key in _absent_decision_fields(columns):
        del out[_STORED_AS.get(key, key)]              # a column the file lacks leaves the stored value
    return out


def _accept(kind: Kind, row: dict, spool, columns: dict) -> None:
    out = _customer_row(row, columns) if kind.name == "customers" else _rows_for_table(kind.name, row)
    pickle.dump(out, spool, protocol=pickle.HIGHEST_PROTOCOL)


def _absent_decision_fields(columns: dict) -> list[str]:
    """The decision fields a customers file has no column for: kept as stored on an existing file (so a back
    office's ERP export, which holds no credit score, neither clears nor changes the credit department's)."""
    return [f for f in DECISION_FIELDS if f not in columns]


def _decision_changes(stored, row: dict) -> dict:
    """{field: (before, after)} of the decision fields the spooled customers `row` changes on `stored`
    (None: a new file). Fields the row lacks (no column) are no change."""
    out = {}
    for name in DECISION_FIELDS:
        col = _STORED_AS.get(name, name)
        if col not in row:
            continue
        before = None if stored is None else getattr(stored, col)
        if before != row[col]:
            out[name] = (before, row[col])
    return out


def _guard_errors(ctx, table: Table, group: list, rules: Rules) -> list[list]:
    """Separation of duties, as PUT /v1/customers (api/service/customers.py): a role outside DECIDING_ROLES may
    not set or change a decision field (E_DECISION_FIELD at its column; a new file's segment attributes are its
    identity), and a change of an existing file's decision fields needs the import's reason. `group`:
    (number, row, columns, _) customers rows → their errors, in order."""
    if not group:
        return []
    ids = [row["id"] for _, row, _, _ in group]
    with ctx.read_tx() as s:
        stored = {r.id: r for r in s.execute(select(*_DECISION_COLUMNS).where(Customer.id.in_(_IDS)), {"ids": ids})}
    out = []
    for number, row, columns, _ in group:
        old = stored.get(row["id"])
        changes = _decision_changes(old, _customer_row(row, columns))
        errors = []
        if not rules.decides:
            for f in changes:
                if not (old is None and f in SEGMENT_FIELDS):
                    errors.append(ImportFileError(
                        table.file, number, columns.get(f, 1), "E_DECISION_FIELD",
                        f"{f}: a decision field: changed by {DECISION_FIELDS[f]}, not by role '{rules.role}' "
                        "(back office imports identity, contacts and the ledger)"))
        elif old is not None and changes and not rules.reason:
            first = min(changes, key=lambda f: columns.get(f, 1))
            errors.append(ImportFileError(
                table.file, number, columns.get(first, 1), INPUT_CODE,
                f"{', '.join(changes)}: a reason is required to change decision fields of an existing credit file "
                "(?reason=… / --reason)"))
        out.append(errors)
    return out


def _spooled(spool):
    spool.seek(0)
    while True:
        try:
            yield pickle.load(spool)
        except EOFError:
            return


# ------------------------------------------------------------------------------------------------ writing
def _rows_for_table(kind_name: str, row: dict) -> dict:
    """A loaded import row → the columns of its table."""
    if kind_name == "customers":
        return {"id": row["id"], "name": row["name"], "type": row["type"], "industry": row["industry"],
                "region": row["region"], "size": row["size"], "since": row["since"],
                "credit_score": row["credit_score"], "external_rating": row["external_rating"],
                "collector": row["collector"], "last_reviewed_on": row["last_reviewed_on"],
                "arrears_reason": row["arrears_reason"], "deal_type": row["deal_type"], "tags": row["tags"],
                "approved_limit_minor": row.get("approved_limit_minor"),
                "approved_terms_days": row["approved_terms_days"]}
    if kind_name == "contacts":
        return {"customer_id": row["customer_id"], "name": row["name"], "role": row["role"], "email": row["email"],
                "mobile": row["mobile"], "address": row["address"], "preferred_channel": row["preferred_channel"],
                "language": row["language"], "is_primary": row["primary"]}
    if kind_name == "invoices":
        return {"id": row["id"], "customer_id": row["customer_id"], "amount_minor": row["amount_minor"],
                "currency": row["currency"], "issued_on": row["issued_on"], "due_on": row["due_on"],
                "order_id": row.get("order_id")}
    if kind_name == "payments":
        return {"id": row["id"], "customer_id": row["customer_id"], "invoice_id": row["invoice_id"],
                "amount_minor": row["amount_minor"], "paid_on": row["paid_on"]}
    if kind_name == "credit_notes":
        return {"id": row["id"], "customer_id": row["customer_id"], "invoice_id": row["invoice_id"],
                "amount_minor": row["amount_minor"], "issued_on": row["issued_on"]}
    if kind_name == "promises":
        return {"id": row["id"], "customer_id": row["customer_id"], "invoice_id": row["invoice_id"],
                "amount_minor": row["amount_minor"], "made_on": row["made_on"], "promised_on": row["promised_on"]}
    if kind_name == "disputes":
        return {"id": row["id"], "customer_id": row["customer_id"], "invoice_id": row["invoice_id"],
                "opened_on": row["opened_on"], "resolved_on": row["resolved_on"], "reason": row["reason"]}
    if kind_name == "instalment_plans":
        return {"id": row["id"], "customer_id": row["customer_id"], "agreed_on": row["agreed_on"],
                "invoice_ids": row["invoice_ids"],
                "instalments": [{"due_on": i["due_on"].isoformat(), "amount_minor": i["amount_minor"]}
                                for i in row["instalments"]]}
    raise AssertionError(kind_name)


_MODELS = {"customers": Customer, "contacts": Contact, "invoices": Invoice, "payments": Payment,
           "credit_notes": CreditNote,
           "promises": Promise, "disputes": Dispute, "instalment_plans": InstalmentPlan}


@dataclass(frozen=True)
class _Writer:
    """Who writes (for the credit-file changes' trail records); None in a dry run's count."""
    ctx: object
    policy: object
    rules: Rules
    actor: str
    import_id: str


def _file_changes(s, writer: _Writer | None, old, row: dict) -> None:
    """An existing credit file's decision fields as the import leaves them: a deciding role's change is a
    credit_file_change record (before/after, actor, reason) in the customer's chain, as over HTTP; a
    non-deciding role's row was refused at validation when it changed one, and should the stored file
    have moved since (a controller meanwhile), its decision fields are kept, never overwritten."""
    changes = _decision_changes(old, row)
    if not changes or writer is None:
        return
    if not writer.rules.decides:
        for name in changes:
            col = _STORED_AS.get(name, name)
            row[col] = getattr(old, col)
        return
    # (approved_limit is compared in minor units; the record shows it as a decimal string)
    record_decision_changes(writer.ctx, s, old, changes, False, writer.policy, actor=writer.actor,
                            request_id=writer.import_id, as_of=writer.rules.as_of,
                            reason=writer.rules.reason or f"import {writer.import_id}")


def _write_batch(s, kind_name: str, batch: list[dict], stats: Counts, now, writer: _Writer | None = None) -> list:
    """Write one batch by natural key; → the customers whose rows it inserted or changed."""
    model = _MODELS[kind_name]
    table = model.__table__
    cols = [c for c in batch[0] if c not in ("id",)]
    if kind_name == "contacts":
        keys = {(r["customer_id"], r["name"]) for r in batch}
        existing = {(r.customer_id, r.name): r for r in s.execute(
            select(table).where(table.c.customer_id.in_(_IDS)), {"ids": list({k[0] for k in keys})}).all()
            if (r.customer_id, r.name) in keys}
    else:
        existing = {r.id: r for r in s.execute(select(table).where(table.c.id.in_(_IDS)),
                                               {"ids": [r["id"] for r in batch]}).all()}
    inserts, updates, touched = [], [], []
    for row in batch:
        key = (row["customer_id"], row["name"]) if kind_name == "contacts" else row["id"]
        old = existing.get(key)
        if old is not None and kind_name == "customers":
            _file_changes(s, writer, old, row)
        if old is None:
            inserts.append({**row, "updated_at": now} if kind_name == "customers" else row)
        elif any(getattr(old, c) != row[c] for c in cols):
            updates.append({**{f"b_{c}": v for c, v in row.items()}, "b_key": old.id,
                            **({"b_updated_at": now} if kind_name == "customers" else {})})
        else:
            stats.unchanged += 1
            continue
        if kind_name != "contacts":               # a contact moves no decision
            touched.append(row["id"] if kind_name == "customers" else row["customer_id"])
    conn = s.connection()
    if inserts:
        conn.execute(insert(table), inserts)
        stats.new += len(inserts)
    if updates:
        set_cols = [c for c in batch[0] if c != "id"] + (["updated_at"] if kind_name == "customers" else [])
        stmt = update(table).where(table.c.id == bindparam("b_key")).values({c: bindparam(f"b_{c}") for c in set_cols})
        conn.execute(stmt, updates)
        stats.changed += len(updates)
    return touched


def _write(ctx, plan, v: _Validation, spools: dict, progress, writer: _Writer) -> int:
    """Write the spooled rows in batches; the customers touched go to the validation's spool. → how many."""
    now = ctx.clock()
    for table, kind in plan:
        stats = v.counts[kind.name]
        batch: list[dict] = []

        def flush():
            if batch:
                with ctx.tx() as s:
                    touched = _write_batch(s, kind.name, batch, stats, now, writer)
                v.spool.touch(set(touched))
                if progress:
                    progress(kind.name, len(batch))
                batch.clear()
        for row in _spooled(spools[table.file]):
            batch.append(row)
            if len(batch) >= BATCH:
                flush()
        flush()
    return v.spool.touched_count()


def _groups(ids: Iterable[str]) -> Iterator[list[str]]:
    it = iter(ids)
    while group := list(itertools.islice(it, DECIDE_GROUP)):
        yield group


def _keep(failures: list, more: list) -> None:
    """Decision failures, the first MAX_ERRORS (a policy failing every customer must not fill the memory)."""
    failures.extend(more[:max(0, MAX_ERRORS - len(failures))])


def _decide_all(ctx, customer_ids: Iterable[str], as_of: dt.date, actor: str, import_id: str, progress,
                workers: int = 1, sums: dict | None = None, count: int | None = None) -> tuple[int, list]:
    """One decision per customer, in groups: evaluated and chained inside one write transaction each; with
    `workers` > 1 evaluated in that many processes (see _decide_parallel). `customer_ids` may be a stream
    (the spool's, in id order; `count` says how many). `sums` ({policy version: figures.Sums}) gathers the
    customers' shares of the book figures."""
    if count is None:
        customer_ids = list(customer_ids)
        count = len(customer_ids)
    if workers > 1 and count > DECIDE_GROUP:
        return _decide_parallel(ctx, customer_ids, as_of, actor, import_id, progress, workers, sums)
    decided, failures = 0, []
    for group in _groups(customer_ids):
        with ctx.tx() as s:
            customers = s.execute(select(Customer).where(Customer.id.in_(_IDS)).order_by(Customer.id)
                                  .with_for_update(), {"ids": group}).scalars().all()
            heads = trail.lock_heads(s, [c.id for c in customers])
            records, last, failed, shares = _evaluate_group(ctx, s, customers, as_of, actor, import_id)
            _store_group(ctx, s, records, last, heads, as_of)
            _add_shares(sums, shares)
            decided += len(records)
            _keep(failures, failed)
        if progress:
            progress("decisions", len(group))
    return decided, failures


def _add_shares(sums: dict | None, shares: dict) -> None:
    if sums is None:
        return
    for version, share in shares.values():
        sums.setdefault(version, figures.Sums(version)).add(share)


def _snapshot_if_whole_book(ctx, sums: dict, decisions: int, failures: list, as_of: dt.date, import_id: str) -> None:
    """An import that decided every customer of the book (a first load) leaves the overview's figures, as a
    finished sweep does (api/reports/figures.py); a partial one leaves them to the next sweep."""
    if failures or len(sums) != 1:
        return
    with ctx.tx() as s:
        policy = ctx.registry.active(s)
        total = sums.get(policy.version)
        if total is None or decisions != s.execute(select(func.count()).select_from(Customer)).scalar_one():
            return
        figures.snapshot_of(s, policy, total, f"import {import_id}", as_of, 0, ctx.clock())


def _evaluate_group(ctx, s, customers, as_of: dt.date, actor: str, import_id: str) -> tuple[list, list, list, dict]:
    """(trail records without chain fields or time, (customer, decision data) pairs, failures,
    {customer: (policy version, share of the book figures)}) of `customers` from the ledger as `s` sees it.
    Writes nothing."""
    policy = ctx.registry.active(s)
    bands = Bands(policy)
    cases = load_cases(s, customers, policy.exponent, as_of)
    iso_day = as_of.isoformat()
    records, last, failures, shares = [], [], [], {}
    for c in customers:
        try:
            decision, facts = evaluate_loaded_with_facts(policy, cases[c.id].typed, as_of)
        except (InputInvalid, EngineFailure) as exc:
            failures.append(f"{c.id}: {exc}")
            continue
        records.append({"subject": c.id, "kind": KIND, "actor": actor, "request_id": import_id, "as_of": as_of,
                        "facts": canonical_json({"case": cases[c.id].plain, "as_of": iso_day, "order": None}),
                        "policy_version": policy.version, "result": decision.stored, "outcome": decision.outcome})
        # what remember_last_evaluations reads: all a worker process sends back of the decision's data
        last.append((c.id, summary_of(decision.body, policy.exponent)))
        shares[c.id] = (policy.version, figures.customer_share(bands, facts))
    return records, last, failures, shares


def _store_group(ctx, s, records: list, last: list, heads: dict, as_of: dt.date) -> None:
    now = ctx.clock()
    trail.insert_chained(s, trail.chain([{**r, "created_at": now} for r in records], heads))
    remember_last_evaluations(s, last, as_of)


# ------------------------------------------------------------------ decisions in worker processes
_worker_ctx = None


def _worker_start(database_url: str) -> None:
    """A decide worker: its own engine and policy registry (the active policy compiled once per process)."""
    global _worker_ctx
    from ...service.context import Context
    from ...store.database import make_engine, make_sessionmaker
    from ...store.policy_store import PolicyRegistry
    _worker_ctx = Context(make_sessionmaker(make_engine(database_url)), PolicyRegistry())


def _worker_group(job: tuple) -> tuple:
    """Evaluate one group in a worker: (ids, chain heads seen before reading, records, last, failures, shares)."""
    group, as_of, actor, import_id = job
    with _worker_ctx.read_tx() as s:
        seen = trail.read_heads(s, group)      # first: a decision written after this is caught by the parent
        customers = s.execute(select(Customer).where(Customer.id.in_(_IDS)).order_by(Customer.id),
                              {"ids": group}).scalars().all()
        records, last, failures, shares = _evaluate_group(_worker_ctx, s, customers, as_of, actor, import_id)
    return group, seen, records, last, failures, shares


def _decide_parallel(ctx, customer_ids, as_of, actor, import_id, progress, workers: int,
                     sums: dict | None) -> tuple[int, list]:
    """The decide phase over processes: `workers` processes read and evaluate groups (the CPU-heavy part,
    durable_rules), the parent writes each group's records as they come back, in one short transaction
    per group, so SQLite's single writer is never contended. A customer whose chain grew between the
    worker's read and the parent's write (an event meanwhile) is evaluated again by the parent, under lock."""
    import multiprocessing
    url = ctx.sessionmaker.kw["bind"].url.render_as_string(hide_password=False)
    jobs = ((group, as_of, actor, import_id) for group in _groups(customer_ids))
    decided, failures = 0, []
    # spawn: a fresh interpreter, no inherited database connections or durable_rules state
    with multiprocessing.get_context("spawn").Pool(workers, _worker_start, (url,)) as pool:
        for group, seen, records, last, failed, shares in _bounded_imap(pool, _worker_group, jobs, 2 * workers):
            with ctx.tx() as s:
                locked = s.execute(select(Customer).where(Customer.id.in_(_IDS)).order_by(Customer.id)
                                   .with_for_update(), {"ids": group}).scalars().all()
                heads = trail.lock_heads(s, [c.id for c in locked])
                stale = {cid for cid, head in heads.items() if head != seen.get(cid)}
                if stale:
                    keep = [r for r in records if r["subject"] not in stale]
                    again, again_last, again_failed, again_shares = _evaluate_group(
                        ctx, s, [c for c in locked if c.id in stale], as_of, actor, import_id)
                    records = sorted(keep + again, key=lambda r: r["subject"])
                    last = [x for x in last if x[0] not in stale] + again_last
                    failed = [f for f in failed if f.split(":", 1)[0] not in stale] + again_failed
                    shares = {cid: v for cid, v in shares.items() if cid not in stale} | again_shares
                _store_group(ctx, s, records, last, heads, as_of)
                _add_shares(sums, shares)
                decided += len(records)
                _keep(failures, failed)
            if progress:
                progress("decisions", len(group))
    return decided, failures


def _bounded_imap(pool, fn, jobs: Iterator, window: int) -> Iterator:
    """pool.imap's results in order, with at most `window` jobs sent ahead (Pool.imap drains its whole input
    at once: every group of the book's ids, and the results waiting, would be in memory)."""
    ahead: collections.deque = collections.deque()
    for job in itertools.islice(jobs, window):
        ahead.append(pool.apply_async(fn, (job,)))
    while ahead:
        result = ahead.popleft().get()
        for job in itertools.islice(jobs, 1):
            ahead.append(pool.apply_async(fn, (job,)))
        yield result


def run_import(ctx, sources: list[Source], *, actor: str, as_of: dt.date | None = None, dry_run: bool = False,
               skip_invalid: bool = False, progress=None, workers: int = 1, role: str | None = None,
               reason: str | None = None) -> dict:
    """Validate, write and decide (see the module's doc). `role` is the importing key's (None: the operator,
    CLI), `reason` what a change of existing credit files' decision fields is recorded with. Returns the
    import record as a dict, with `rejected_csv` (the rejected rows and why) when rows were refused."""
    as_of = as_of or ctx.today()
    import_id = uuid.uuid4().hex
    rules = Rules(as_of, role, (reason or "").strip() or None)
    with ctx.read_tx() as s:
        policy = ctx.registry.active(s)
    plan, v, files, spools = validate_files(ctx, sources, policy, rules)
    status = "rejected" if v.error_count and not skip_invalid else ("checked" if dry_run else "done")
    decisions, failures = 0, []
    try:
        if status == "done":
            touched = _write(ctx, plan, v, spools, progress, _Writer(ctx, policy, rules, actor, import_id))
            sums: dict = {}
            decisions, failures = _decide_all(ctx, v.spool.touched_ids(), as_of, actor, import_id, progress, workers,
                                              sums, count=touched)
            _snapshot_if_whole_book(ctx, sums, decisions, failures, as_of, import_id)
        elif status == "checked":
            _count_changes(ctx, plan, v, spools)
        rejected_csv = _rejected_csv(v) if v.spool.rejected_rows else None
    finally:
        for spool in spools.values():
            spool.close()
        v.spool.close()
    record = {"id": import_id, "actor": actor, "as_of": as_of.isoformat(), "status": status, "dry_run": dry_run,
              "files": files, "counts": {k: c.as_dict() for k, c in v.counts.items()}, "errors": v.errors,
              "error_count": v.error_count, "decisions": decisions, "decision_failures": failures[:MAX_ERRORS]}
    with ctx.tx() as s:
        s.add(ImportRun(id=import_id, created_at=ctx.clock(), finished_at=ctx.clock(), actor=actor, status=status,
                        dry_run=dry_run, as_of=as_of, files=files, counts=record["counts"], errors=v.errors,
                        error_count=v.error_count, decisions=decisions))
    record["rejected_csv"] = rejected_csv
    return record


def _count_changes(ctx, plan, v: _Validation, spools: dict) -> None:
    """A dry run's new / changed / unchanged counts: the write pass inside a transaction rolled back."""
    class _Rollback(Exception):
        pass
    now = ctx.clock()
    try:
        with ctx.tx() as s:
            for table, kind in plan:
                stats = v.counts[kind.name]
                batch = []
                for row in _spooled(spools[table.file]):
                    batch.append(row)
                    if len(batch) >= BATCH:
                        _write_batch(s, kind.name, batch, stats, now)
                        batch = []
                if batch:
                    _write_batch(s, kind.name, batch, stats, now)
            raise _Rollback()
    except _Rollback:
        pass


def _rejected_csv(v: _Validation) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["file", "row", "error"])
    for file, number, error in v.spool.rejected():
        w.writerow([file, number, error])
    return out.getvalue()


def get_import(ctx, import_id: str) -> dict:
    with ctx.read_tx() as s:
        r = s.get(ImportRun, import_id)
        if r is None:
            raise DomainError("E_NOT_FOUND", f"import '{import_id}' not found")
        return {"id": r.id, "actor": r.actor, "as_of": r.as_of.isoformat(), "status": r.status, "dry_run": r.dry_run,
                "files": r.files, "counts": r.counts, "errors": r.errors, "error_count": r.error_count,
                "decisions": r.decisions, "created_at": r.created_at.isoformat() + "Z"}

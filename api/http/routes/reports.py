"""Portfolio reports (aging, overdue, DSO, collections) and statements of account. Permission reports:read.

Large outputs (the aging report) are written to a spooled temporary file while the read transaction
is open and sent from it after the transaction has ended: memory holds a bounded part of the output and
no transaction waits on a slow client.
"""
import csv
import datetime as dt
import io
import json
import tempfile

from flask import Blueprint, Response, request
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from ...jobs import accrual
from ...reports import book as reports
from ..request import ctx, current_key, json_response
from ..schemas import IN_RANGE

bp = Blueprint("reports", __name__)
SPOOL_IN_MEMORY = 1 << 20          # bytes of output kept in memory before the spool moves to disk
MAX_DSO_DAYS = 3650
MAX_OVERDUE_ROWS = 10000


class _Query(Schema):
    class Meta:
        unknown = RAISE


def _by():
    """`by=group`: the report's figures summed per customer group (集团客户) as well (JSON `groups`; CSV rows
    per group), key null for the customers in no group, as the aging report's groups."""
    return fields.String(load_default="customer", validate=validate.OneOf(list(reports.GROUPINGS)))


class AgingQuery(_Query):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
    by = _by()


class AgingChartQuery(_Query):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    by = fields.String(load_default="amount_tier",
                       validate=validate.OneOf([*reports.SEGMENT_DIMENSIONS, "group"]))


class OverdueQuery(_Query):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=MAX_OVERDUE_ROWS))
    by = _by()


class DsoQuery(_Query):
    as_of = fields.Date(load_default=None, validate=IN_RANGE)
    days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=MAX_DSO_DAYS))
    by = _by()


class CollectionsQuery(_Query):
    by = _by()
    since = fields.Date(load_default=None, validate=IN_RANGE)
    until = fields.Date(load_default=None, validate=IN_RANGE)

    @validates_schema
    def _ordered(self, data, **kw):
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("since is after until", "since")


class StatementQuery(_Query):
    from_ = fields.Date(data_key="from", load_default=None, validate=IN_RANGE)
    to = fields.Date(load_default=None, validate=IN_RANGE)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @validates_schema
    def _ordered(self, data, **kw):
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("from is after to", "from")


def _query(schema) -> dict:
    return schema().load(request.args.to_dict())


def _today() -> dt.date:
    return ctx().today()


def _spooled(write, mimetype: str, filename: str | None = None) -> Response:
    """write(emit) fills a spooled file; the response streams it and closes it."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+b")
    try:
        write(lambda text: spool.write(text.encode("utf-8")))
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def chunks():
        try:
            while True:
                block = spool.read(64 * 1024)
                if not block:
                    return
                yield block
        finally:
            spool.close()

    headers = {"Content-Length": str(size)}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response = Response(chunks(), 200, mimetype=mimetype, headers=headers)
    response.call_on_close(spool.close)
    return response


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.get("/reports/aging")
def aging():
    current_key("reports:read")
    q = _query(AgingQuery)
    as_of = q["as_of"] or _today()
    if q["format"] == "csv" and q["by"] == "group":
        def write_groups(emit):
            summary = reports.aging(ctx(), as_of)
            emit(_csv_line(reports.aging_group_csv_columns([b["label"] for b in summary["buckets"]])))
            for g in summary["groups"]:
                emit(_csv_line(reports.aging_group_csv_row(g)))
        return _spooled(write_groups, "text/csv", f"aging-by-group-{as_of.isoformat()}.csv")
    if q["format"] == "csv":
        def write(emit):
            started = []

            def row(r):
                if not started:
                    emit(_csv_line(reports.aging_csv_columns(r["buckets"])))
                    started.append(True)
                emit(_csv_line(reports.aging_csv_row(r)))
            summary = reports.aging(ctx(), as_of, row)
            if not started:
                emit(_csv_line(reports.aging_csv_columns([b["label"] for b in summary["buckets"]])))
        return _spooled(write, "text/csv", f"aging-{as_of.isoformat()}.csv")

    def write_json(emit):
        emit('{"customers": [')
        first = []

        def row(r):
            emit(("," if first else "") + _dumps(r))
            first.append(True)
        summary = reports.aging(ctx(), as_of, row)
        emit("]")
        for key in sorted(summary):
            emit(f", {_dumps(key)}: {_dumps(summary[key])}")
        emit("}")
    return _spooled(write_json, "application/json")


@bp.get("/reports/aging.svg")
def aging_chart():
    current_key("reports:read")
    q = _query(AgingChartQuery)
    svg = reports.aging_chart(ctx(), q["as_of"] or _today(), q["by"])
    return Response(svg, 200, mimetype="image/svg+xml")


@bp.get("/reports/overdue")
def overdue():
    current_key("reports:read")
    q = _query(OverdueQuery)
    return json_response(reports.overdue(ctx(), q["as_of"] or _today(), q["limit"], q["by"]))


@bp.get("/reports/dso")
def dso():
    current_key("reports:read")
    q = _query(DsoQuery)
    return json_response(reports.dso(ctx(), q["as_of"] or _today(), q["days"], q["by"]))


@bp.get("/reports/collections")
def collections():
    current_key("reports:read")
    q = _query(CollectionsQuery)
    until = q["until"] or _today()
    since = q["since"] or (until - dt.timedelta(days=29))
    if since > until:               # only `since` given, after today
        raise ValidationError({"since": ["since is after until"]})
    return json_response(reports.collections(ctx(), since, until, q["by"]))


@bp.get("/customers/<customer_id>/statement")
def statement(customer_id):
    current_key("reports:read")
    q = _query(StatementQuery)
    end = q["to"] or _today()
    start = q["from_"] or end.replace(day=1)
    if start > end:                 # only `from` given, after `to`'s default
        raise ValidationError({"from": ["from is after to"]})
    st = reports.statement(ctx(), customer_id, start, end)
    if q["format"] == "csv":
        def write(emit):
            emit(_csv_line(reports.STATEMENT_CSV_COLUMNS))
            for r in reports.statement_csv_rows(st):
                emit(_csv_line(r))
        return _spooled(write, "text/csv", f"statement-{start.isoformat()}-{end.isoformat()}.csv")
    return json_response(st)


class InterestAccrualsQuery(_Query):
    from_ = fields.Date(data_key="from", load_default=None, validate=IN_RANGE)
    to = fields.Date(load_default=None, validate=IN_RANGE)
    customer = fields.String(load_default=None, validate=validate.Length(min=1, max=128))
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))
    by = _by()

    @validates_schema
    def _ordered(self, data, **kw):
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("from is after to", "from")


@bp.get("/reports/interest-accruals")
def interest_accruals():
    """The late-interest ledger (api/accrual.py): rows accrued in [from, to] (default: this month to
    today), optionally one customer's, with totals per customer (JSON) or the rows as CSV."""
    current_key("reports:read")
    q = _query(InterestAccrualsQuery)
    end = q["to"] or _today()
    start = q["from_"] or end.replace(day=1)
    if start > end:                 # only `from` given, after `to`'s default
        raise ValidationError({"from": ["from is after to"]})
    if q["format"] == "csv" and q["by"] == "group":
        def write_groups(emit):
            emit(_csv_line(accrual.GROUP_CSV_COLUMNS))
            for g in accrual.report(ctx(), start, end, q["customer"], by="group")["groups"]:
                emit(_csv_line(accrual.group_csv_row(g)))
        return _spooled(write_groups, "text/csv",
                        f"interest-accruals-by-group-{start.isoformat()}-{end.isoformat()}.csv")
    if q["format"] == "csv":
        def write(emit):
            emit(_csv_line(accrual.CSV_COLUMNS))
            accrual.report(ctx(), start, end, q["customer"], lambda r: emit(_csv_line(accrual.csv_row(r))))
        return _spooled(write, "text/csv", f"interest-accruals-{start.isoformat()}-{end.isoformat()}.csv")

    def write_json(emit):
        emit('{"rows": [')
        first = []

        def row(r):
            emit(("," if first else "") + _dumps(r))
            first.append(True)
        summary = accrual.report(ctx(), start, end, q["customer"], row, by=q["by"])
        emit("]")
        for key in sorted(summary):
            emit(f", {_dumps(key)}: {_dumps(summary[key])}")
        emit("}")
    return _spooled(write_json, "application/json")

import csv
import io
import json

from flask import Blueprint, Response, request

from ...errors import DomainError
from ...service import decisions
from ..request import ctx, current_key, json_response, reader_locale
from ..schemas import DecisionQuery

bp = Blueprint("decisions", __name__)


@bp.get("/decisions")
def list_decisions():
    key = current_key("decisions:read")
    q = DecisionQuery().load(request.args.to_dict())
    fmt = q.pop("format")
    q.pop("locale", None)
    if key.role == "sales":                   # sales see their own credit checks only
        q["kind"], q["actor"] = "credit_check", key.name
    locale = reader_locale()
    rows, cursor = decisions.list_decisions(ctx(), **q)
    views = decisions.decision_views(ctx(), rows, locale=locale)
    headers = {"X-Next-Cursor": cursor} if cursor else {}
    if fmt == "jsonl":
        body = "".join(json.dumps(v, ensure_ascii=False, sort_keys=True) + "\n" for v in views)
        return Response(body, 200, mimetype="application/x-ndjson", headers=headers)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["id", "created_at", "kind", "subject", "actor", "as_of", "policy_version", "outcome", "hash"])
        for v in views:
            w.writerow([v["id"], v["created_at"], v["kind"], v["subject"], v["actor"], v["as_of"],
                        v["policy_version"], v["outcome"] or "", v["hash"]])
        return Response(out.getvalue(), 200, mimetype="text/csv", headers=headers)
    return json_response({"decisions": views, "next_cursor": cursor})


@bp.get("/decisions/<decision_id>")
def get_decision(decision_id):
    key = current_key("decisions:read")
    rec = decisions.get_decision(ctx(), decision_id)
    if key.role == "sales" and (rec.kind != "credit_check" or rec.actor != key.name):
        # the same answer as an unknown id: a sales key learns nothing about records it may not read
        raise DomainError("E_NOT_FOUND", f"decision '{decision_id}' not found")
    return json_response(decisions.decision_views(ctx(), [rec], include_facts=True, locale=reader_locale())[0])


@bp.post("/decisions/<decision_id>/replay")
def replay(decision_id):
    current_key("decisions:replay")
    return json_response(decisions.replay(ctx(), decision_id))


@bp.get("/audit/verify")
def verify():
    current_key("audit:verify")
    result = decisions.verify(ctx())
    return json_response(result, 200)

"""Legal cases a litigation referral opened, and their one-way status (api/service/legal_cases.py)."""

from flask import Blueprint, request

from ...service import legal_cases
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import LegalCaseQuery, LegalStatusRequest

bp = Blueprint("legal_cases", __name__)


@bp.get("/legal-cases")
def list_cases():
    current_key("legal:read")
    q = LegalCaseQuery().load(request.args.to_dict())
    rows, cursor = legal_cases.list_cases(ctx(), **q)
    return json_response({"legal_cases": rows, "next_cursor": cursor})


@bp.get("/customers/<customer_id>/legal-cases")
def customer_cases(customer_id):
    current_key("legal:read")
    q = LegalCaseQuery().load(request.args.to_dict())
    rows, cursor = legal_cases.list_cases(ctx(), customer=customer_id, **q)
    return json_response({"legal_cases": rows, "next_cursor": cursor})


@bp.post("/legal-cases/<int:case_id>/status")
def change_status(case_id):
    current_key("legal:write")
    body = LegalStatusRequest().load(json_body())
    return json_response(legal_cases.change_status(ctx(), case_id, body, actor(), request_id()))

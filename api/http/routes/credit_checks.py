from flask import Blueprint

from ...service import credit_checks
from ..request import (
    actor,
    ctx,
    current_key,
    json_body,
    json_response,
    metrics,
    request_id,
)
from ..schemas import CreditCheckRequest

bp = Blueprint("credit_checks", __name__)
_REQUEST = CreditCheckRequest()          # built once: loading keeps no state on the schema


@bp.post("/credit-checks")
def credit_check():
    current_key("credit_checks:write")
    req = _REQUEST.load(json_body())
    result = credit_checks.credit_check(ctx(), req, actor(), request_id())
    metrics().decision("credit_check", result["outcome"])
    return json_response(result, 201)


@bp.delete("/credit-checks/<order_id>")
def release(order_id):
    current_key("credit_checks:write")
    return json_response(credit_checks.release_reservation(ctx(), order_id))

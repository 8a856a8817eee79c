from flask import Blueprint

from ...service import credit_checks
from ..request import (
    actor,
    ctx,
    current_key,
    json_body,
    json_response,
    metrics,
    reader_locale,
    request_id,
)
from ..schemas import CreditCheckRequest

bp = Blueprint("credit_checks", __name__)
_REQUEST = CreditCheckRequest()          # built once: loading keeps no state on the schema


@bp.post("/credit-checks")
def credit_check():
    key = current_key("credit_checks:write")
    req = _REQUEST.load(json_body())
    result = credit_checks.credit_check(ctx(), req, actor(), request_id(), role=key.role, locale=reader_locale())
    replayed = result.pop("_replayed", False)
    if not replayed:
        metrics().decision("credit_check", result["outcome"])
    response = json_response(result, 201)
    if replayed:                  # a retry: the first decision, not a new one
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.delete("/credit-checks/<order_id>")
def release(order_id):
    key = current_key("credit_checks:write")
    return json_response(credit_checks.release_reservation(ctx(), order_id, actor(), key.role))

from flask import Blueprint

from ..schemas import CreditCheckRequest
from ._common import _json, actor, current_key, json_body, metrics, request_id, service

bp = Blueprint("credit_checks", __name__)
_REQUEST = CreditCheckRequest()          # built once: loading keeps no state on the schema


@bp.post("/credit-checks")
def credit_check():
    current_key("credit_checks:write")
    req = _REQUEST.load(json_body())
    result = service().credit_check(req, actor(), request_id())
    metrics().decision("credit_check", result["outcome"])
    return _json(result, 201)


@bp.delete("/credit-checks/<order_id>")
def release(order_id):
    current_key("credit_checks:write")
    return _json(service().release_reservation(order_id))

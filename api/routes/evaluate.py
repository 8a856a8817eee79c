from flask import Blueprint, request

from ..schemas import EvaluateRequest
from ._common import _json, actor, current_key, json_body, metrics, request_id, service

bp = Blueprint("evaluate", __name__)


@bp.post("/customers/<customer_id>/evaluate")
def evaluate_customer(customer_id):
    current_key("evaluate")
    req = EvaluateRequest().load(json_body() if request.get_data() else {})
    result = service().evaluate_customer(customer_id, req["as_of"], actor(), request_id())
    metrics().decision("evaluate", None)
    return _json(result, 201)


@bp.post("/evaluate")
def evaluate_stateless():
    current_key("evaluate")
    result = service().evaluate_stateless(json_body(), actor(), request_id())
    metrics().decision("evaluate_stateless", result["decision"]["credit"].get("check", {}).get("outcome"))
    return _json(result, 201)

from flask import Blueprint, request

from ...service import evaluations
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
from ..schemas import EvaluateRequest

bp = Blueprint("evaluate", __name__)


@bp.post("/customers/<customer_id>/evaluate")
def evaluate_customer(customer_id):
    current_key("evaluate")
    req = EvaluateRequest().load(json_body() if request.get_data() else {})
    result = evaluations.evaluate_customer(ctx(), customer_id, req["as_of"], actor(), request_id(),
                                           locale=reader_locale())
    metrics().decision("evaluate", None)
    return json_response(result, 201)


@bp.post("/evaluate")
def evaluate_stateless():
    current_key("evaluate")
    result = evaluations.evaluate_stateless(ctx(), json_body(), actor(), request_id(), locale=reader_locale())
    metrics().decision("evaluate_stateless", result["decision"]["credit"].get("check", {}).get("outcome"))
    return json_response(result, 201)

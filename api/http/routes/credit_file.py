"""A controller's settings on a credit file outside the policy: the credit hold (api/service/credit_file.py)."""

from flask import Blueprint

from ...service import credit_file
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import HoldRequest, ReferralRejectRequest

bp = Blueprint("credit_file", __name__)
_HOLD, _LIFT = HoldRequest(), ReferralRejectRequest()  # lifting takes a reason, as a rejection does


@bp.get("/customers/<customer_id>/hold")
def get_hold(customer_id):
    current_key("customers:read")
    return json_response(credit_file.get_hold(ctx(), customer_id))


@bp.put("/customers/<customer_id>/hold")
def place_hold(customer_id):
    current_key("holds:write")
    req = _HOLD.load(json_body())
    return json_response(credit_file.place_hold(ctx(), customer_id, req, actor(), request_id()))


@bp.post("/customers/<customer_id>/hold/lift")
def lift_hold(customer_id):
    current_key("holds:write")
    req = _LIFT.load(json_body())
    return json_response(credit_file.lift_hold(ctx(), customer_id, req, actor(), request_id()))

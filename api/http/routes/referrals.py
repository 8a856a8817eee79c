"""Referred credit checks (api/service/referrals.py) and where a checked order stands."""

from flask import Blueprint, request

from ...service import referrals
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import ReferralExpireRequest, ReferralQuery, ReferralRejectRequest, ReferralReleaseRequest

bp = Blueprint("referrals", __name__)
_QUERY, _RELEASE, _REJECT, _EXPIRE = (
    ReferralQuery(),
    ReferralReleaseRequest(),
    ReferralRejectRequest(),
    ReferralExpireRequest(),
)


@bp.get("/credit-checks/<order_id>")
def order_status(order_id):
    key = current_key("credit_checks:read")
    return json_response(referrals.get_order(ctx(), order_id, key))


@bp.get("/referrals")
def list_referrals():
    current_key("referrals:read")
    return json_response(referrals.list_referrals(ctx(), _QUERY.load(request.args.to_dict())))


@bp.post("/referrals/<referral_id>/release")
def release(referral_id):
    key = current_key("referrals:write")
    req = _RELEASE.load(json_body())
    return json_response(referrals.release(ctx(), referral_id, req, key, request_id()))


@bp.post("/referrals/<referral_id>/reject")
def reject(referral_id):
    key = current_key("referrals:write")
    req = _REJECT.load(json_body())
    return json_response(referrals.reject(ctx(), referral_id, req, key, request_id()))


@bp.post("/referrals/<referral_id>/recheck")
def recheck(referral_id):
    key = current_key("referrals:write")
    return json_response(referrals.recheck(ctx(), referral_id, key, request_id()))


@bp.post("/referrals/expire")
def expire():
    current_key("referrals:write")
    req = _EXPIRE.load(json_body() if request.get_data() else {})
    svc = ctx()
    return json_response(referrals.expire(svc, req["as_of"] or svc.today(), f"api:{actor()}", request_id()))

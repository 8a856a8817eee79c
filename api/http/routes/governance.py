"""Granted limits (api/service/grants.py), four-eyes approvals (api/service/approvals.py, four_eyes.py) and
customer groups and their holds (api/service/groups.py)."""
from flask import Blueprint, request

from ...service import approvals, four_eyes, grants, groups
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import (
    ApprovalDecisionRequest,
    ApprovalQuery,
    GroupMemberRequest,
    GroupRequest,
    HoldRequest,
    KeyRevokeRequest,
    LimitGrantRequest,
    ReferralRejectRequest,
)

bp = Blueprint("governance", __name__)
_GRANT, _REVOKE, _DECIDE, _QUERY = LimitGrantRequest(), KeyRevokeRequest(), ApprovalDecisionRequest(), ApprovalQuery()
_HOLD, _LIFT = HoldRequest(), ReferralRejectRequest()      # as a customer's hold (routes/credit_file.py)


@bp.get("/customers/<customer_id>/limit-grant")
def get_grant(customer_id):
    current_key("customers:read")
    return json_response(grants.get_grant(ctx(), customer_id))


@bp.put("/customers/<customer_id>/limit-grant")
def grant(customer_id):
    key = current_key("grants:write")
    req = _GRANT.load(json_body())
    body, applied = grants.grant_limit(ctx(), customer_id, req, key, request_id())
    return json_response(body, 200 if applied else 202)


@bp.post("/customers/<customer_id>/limit-grant/revoke")
def revoke_grant(customer_id):
    key = current_key("grants:write")
    req = _REVOKE.load(json_body())          # a reason, as a key's revocation takes
    return json_response(grants.revoke_grant(ctx(), customer_id, req, key, request_id()))


@bp.get("/approvals")
def list_approvals():
    current_key("approvals:read")
    return json_response(approvals.list_approvals(ctx(), _QUERY.load(request.args.to_dict())))


@bp.post("/approvals/<approval_id>/approve")
def approve(approval_id):
    key = current_key("approvals:write")
    return json_response(four_eyes.decide(ctx(), approval_id, _DECIDE.load(json_body()), key, request_id(), True))


@bp.post("/approvals/<approval_id>/reject")
def reject(approval_id):
    key = current_key("approvals:write")
    return json_response(four_eyes.decide(ctx(), approval_id, _DECIDE.load(json_body()), key, request_id(), False))


@bp.get("/groups/<group_id>")
def get_group(group_id):
    current_key("customers:read")
    return json_response(groups.get_group(ctx(), group_id))


@bp.put("/groups/<group_id>")
def put_group(group_id):
    key = current_key("groups:write")
    return json_response(groups.put_group(ctx(), group_id, GroupRequest().load(json_body()), key, request_id()))


@bp.put("/customers/<customer_id>/group")
def set_member(customer_id):
    key = current_key("groups:write")
    return json_response(groups.set_member(ctx(), customer_id, GroupMemberRequest().load(json_body()), key,
                                           request_id()))


# a group's credit hold: as a customer's (routes/credit_file.py), inherited by every member
@bp.get("/groups/<group_id>/hold")
def get_group_hold(group_id):
    current_key("customers:read")
    return json_response(groups.get_hold(ctx(), group_id))


@bp.put("/groups/<group_id>/hold")
def place_group_hold(group_id):
    current_key("holds:write")
    req = _HOLD.load(json_body())
    return json_response(groups.place_hold(ctx(), group_id, req, actor(), request_id()))


@bp.post("/groups/<group_id>/hold/lift")
def lift_group_hold(group_id):
    current_key("holds:write")
    req = _LIFT.load(json_body())
    return json_response(groups.lift_hold(ctx(), group_id, req, actor(), request_id()))

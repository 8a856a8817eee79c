"""Granted limits (api/service/grants.py), four-eyes approvals (api/service/approvals.py, four_eyes.py) and
customer groups (api/service/groups.py)."""
from flask import Blueprint, request

from ...service import approvals, four_eyes, grants, groups
from ..request import ctx, current_key, json_body, json_response, request_id
from ..schemas import (
    ApprovalDecisionRequest,
    ApprovalQuery,
    GroupMemberRequest,
    GroupRequest,
    KeyRevokeRequest,
    LimitGrantRequest,
)

bp = Blueprint("governance", __name__)
_GRANT, _REVOKE, _DECIDE, _QUERY = LimitGrantRequest(), KeyRevokeRequest(), ApprovalDecisionRequest(), ApprovalQuery()


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

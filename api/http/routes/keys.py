"""API keys for admins (api/service/keys.py): list without secrets, revoke, rotate."""

from flask import Blueprint, request

from ...service import keys
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import KeyQuery, KeyRevokeRequest, KeyRotateRequest

bp = Blueprint("keys", __name__)
_QUERY, _REVOKE, _ROTATE = KeyQuery(), KeyRevokeRequest(), KeyRotateRequest()


@bp.get("/keys")
def list_keys():
    current_key("keys:read")
    q = _QUERY.load(request.args.to_dict())
    return json_response(keys.list_keys(ctx(), q["include_revoked"]))


@bp.post("/keys/<name>/revoke")
def revoke(name):
    current_key("keys:write")
    req = _REVOKE.load(json_body())
    return json_response(keys.revoke(ctx(), name, req, actor(), request_id()))


@bp.post("/keys/<name>/rotate")
def rotate(name):
    current_key("keys:write")
    req = _ROTATE.load(json_body())
    return json_response(keys.rotate(ctx(), name, req, actor(), request_id()))

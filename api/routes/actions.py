from flask import Blueprint, request

from ..schemas import ActionCompleteRequest, ActionQuery
from ._common import _json, actor, current_key, json_body, service

bp = Blueprint("actions", __name__)


@bp.get("/actions")
def list_actions():
    current_key("actions:read")
    q = ActionQuery().load(request.args.to_dict())
    rows, cursor = service().list_actions(**q)
    return _json({"actions": rows, "next_cursor": cursor})


@bp.post("/actions/<int:action_id>/complete")
def complete(action_id):
    current_key("actions:write")
    body = ActionCompleteRequest().load(json_body())
    return _json(service().complete_action(action_id, body, actor()))

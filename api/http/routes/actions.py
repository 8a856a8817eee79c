from flask import Blueprint, request

from ...service import actions
from ..request import actor, ctx, current_key, json_body, json_response
from ..schemas import ActionCompleteRequest, ActionQuery

bp = Blueprint("actions", __name__)


@bp.get("/actions")
def list_actions():
    current_key("actions:read")
    q = ActionQuery().load(request.args.to_dict())
    rows, cursor = actions.list_actions(ctx(), **q)
    return json_response({"actions": rows, "next_cursor": cursor})


@bp.post("/actions/<int:action_id>/complete")
def complete(action_id):
    current_key("actions:write")
    body = ActionCompleteRequest().load(json_body())
    return json_response(actions.complete_action(ctx(), action_id, body, actor()))

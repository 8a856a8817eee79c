import os

from flask import Blueprint, Response, current_app, request

from ...documents.render import default_folder
from ...service import actions, documents
from ..request import actor, ctx, current_key, json_body, json_response, request_id
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
    return json_response(actions.complete_action(ctx(), action_id, body, actor(), request_id()))


@bp.get("/actions/<int:action_id>/document")
def document(action_id):
    """Preview the document the action sends: ?format=html|txt|pdf, ?locale=zh_CN|en."""
    current_key("actions:read")
    config = current_app.config
    # who writes the documents: the DOCUMENTS configuration (docs/documents.md), at least the creditor's name
    settings = config.get("DOCUMENTS") or {"creditor": {"name": os.environ.get("CREDITCTL_CREDITOR_NAME", "creditctl")}}
    media, body = documents.action_document(
        ctx(),
        action_id,
        request.args.get("format", "html"),
        settings,
        str(default_folder(config["POLICY_FILE"])),
        request.args.get("locale"),
    )
    return Response(body, 200, content_type=media)

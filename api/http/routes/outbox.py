from flask import Blueprint, request

from ...service import deliveries
from ..request import ctx, current_key, json_response
from ..schemas import OutboxQuery

bp = Blueprint("outbox", __name__)


@bp.get("/outbox")
def list_outbox():
    """The outbox worker's messages (api/jobs/outbox.py), filtered by status, customer or action."""
    current_key("actions:read")
    q = OutboxQuery().load(request.args.to_dict())
    if "action" in q:
        q["action"] = int(q["action"])
    return json_response(deliveries.list_deliveries(ctx(), **q))

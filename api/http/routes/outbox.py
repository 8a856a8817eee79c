from flask import Blueprint, request

from ...service import deliveries
from ..request import actor, ctx, current_key, json_body, json_response, request_id
from ..schemas import OutboxQuery, ReferralRejectRequest

bp = Blueprint("outbox", __name__)
_REQUEUE = ReferralRejectRequest()  # a requeue takes a reason, as a rejection does


@bp.get("/outbox")
def list_outbox():
    """The outbox worker's messages (api/jobs/outbox.py), filtered by status, customer or action."""
    current_key("actions:read")
    q = OutboxQuery().load(request.args.to_dict())
    if "action" in q:
        q["action"] = int(q["action"])
    return json_response(deliveries.list_deliveries(ctx(), **q))


@bp.post("/outbox/<int:delivery_id>/requeue")
def requeue(delivery_id):
    """A dead letter queued again (docs/delivery.md): the next worker round sends it once."""
    current_key("outbox:write")
    req = _REQUEUE.load(json_body())
    return json_response(deliveries.requeue(ctx(), delivery_id, req, actor(), request_id()))

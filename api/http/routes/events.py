from flask import Blueprint, Response

from ...service import events
from ..request import actor, ctx, current_key, json_body, metrics, request_id
from ..schemas import EventRequest

bp = Blueprint("events", __name__)


@bp.post("/events")
def post_event():
    key = current_key("events:write")
    raw = json_body()
    parsed = EventRequest().load(raw)
    status, response = events.post_event(ctx(), raw, parsed, actor(), request_id(), role=key.role)
    if status == 201:
        metrics().decision("event", None)
    return Response(response, status, mimetype="application/json")

from flask import Blueprint, Response

from ..schemas import EventRequest
from ._common import actor, current_key, json_body, metrics, request_id, service

bp = Blueprint("events", __name__)


@bp.post("/events")
def post_event():
    current_key("events:write")
    raw = json_body()
    parsed = EventRequest().load(raw)
    status, response = service().post_event(raw, parsed, actor(), request_id())
    if status == 201:
        metrics().decision("event", None)
    return Response(response, status, mimetype="application/json")

from flask import Blueprint, request

from .. import review
from ..schemas import SweepRequest
from ._common import _json, actor, current_key, json_body, service

bp = Blueprint("reviews", __name__)


@bp.get("/reviews")
def pending_reviews():
    """Review proposals that raise a limit or terms and wait for a controller."""
    current_key("reviews:read")
    return _json({"pending": review.pending(service())})


@bp.post("/reviews")
def run_reviews():
    """Run the periodic review for a day (customers whose review is due)."""
    current_key("reviews:write")
    req = SweepRequest().load(json_body() if request.get_data() else {})
    svc = service()
    day = req["as_of"] or svc.today()
    return _json({"as_of": day.isoformat(), **review.run_reviews(svc, day, f"api:{actor()}")}, 201)


@bp.post("/customers/<customer_id>/review/approve")
def approve(customer_id):
    current_key("reviews:write")
    return _json(review.approve(service(), customer_id, actor()))

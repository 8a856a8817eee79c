from flask import Blueprint, request

from ...jobs import review
from ..request import actor, ctx, current_key, json_body, json_response
from ..schemas import SweepRequest

bp = Blueprint("reviews", __name__)


@bp.get("/reviews")
def pending_reviews():
    """Review proposals that raise a limit or terms and wait for a controller."""
    current_key("reviews:read")
    return json_response({"pending": review.pending(ctx())})


@bp.post("/reviews")
def run_reviews():
    """Run the periodic review for a day (customers whose review is due)."""
    current_key("reviews:write")
    req = SweepRequest().load(json_body() if request.get_data() else {})
    svc = ctx()
    day = req["as_of"] or svc.today()
    return json_response({"as_of": day.isoformat(), **review.run_reviews(svc, day, f"api:{actor()}")}, 201)


@bp.post("/customers/<customer_id>/review/approve")
def approve(customer_id):
    current_key("reviews:write")
    return json_response(review.approve(ctx(), customer_id, actor()))

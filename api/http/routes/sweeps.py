from flask import Blueprint

from ...jobs import sweep
from ..request import actor, ctx, current_key, json_body, json_response
from ..schemas import SweepRequest

bp = Blueprint("sweeps", __name__)


@bp.post("/sweeps")
def start_sweep():
    """Run (or resume) the collections sweep for a day, synchronously, and return its summary."""
    current_key("sweeps:write")
    from flask import request

    req = SweepRequest().load(json_body() if request.get_data() else {})
    svc = ctx()
    result = sweep.run_sweep(svc, req["as_of"] or svc.today(), f"api:{actor()}")
    return json_response(result, 201)


@bp.get("/sweeps/<run_id>")
def get_sweep(run_id):
    current_key("sweeps:read")
    return json_response(sweep.summary(ctx(), run_id))

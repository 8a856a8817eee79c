from flask import Blueprint

from .. import sweep
from ..schemas import SweepRequest
from ._common import _json, actor, current_key, json_body, service

bp = Blueprint("sweeps", __name__)


@bp.post("/sweeps")
def start_sweep():
    """Run (or resume) the collections sweep for a day, synchronously, and return its summary."""
    current_key("sweeps:write")
    from flask import request
    req = SweepRequest().load(json_body() if request.get_data() else {})
    svc = service()
    result = sweep.run_sweep(svc, req["as_of"] or svc.today(), f"api:{actor()}")
    return _json(result, 201)


@bp.get("/sweeps/<run_id>")
def get_sweep(run_id):
    current_key("sweeps:read")
    return _json(sweep.summary(service(), run_id))

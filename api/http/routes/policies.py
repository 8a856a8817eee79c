from flask import Blueprint, Response, current_app, request

from ...errors import invalid
from ...jobs import simulate
from ...service import policies
from ..request import (
    actor,
    ctx,
    current_key,
    json_body,
    json_response,
    metrics,
    request_id,
)
from ..schemas import (
    CancelActivationRequest,
    PolicyTextRequest,
    PublishQuery,
    PublishRequest,
    SimulateQuery,
    SimulateRequest,
)

bp = Blueprint("policies", __name__)


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


def _policy_text() -> tuple[str, str]:
    if request.mimetype in YAML_TYPES:
        source = request.args.get("source") or "api"
        if len(source) > 512:                    # policy_versions.source
            raise invalid({"source": ["at most 512 characters"]})
        return request.get_data(as_text=True), source
    req = PolicyTextRequest().load(json_body())
    return req["text"], req["source"]


@bp.get("/policies")
def list_policies():
    """Every version, the activation timeline (in force, scheduled, superseded, cancelled): docs/governance.md."""
    current_key("policies:read")
    return json_response(policies.list_policies(ctx()))


@bp.post("/policies/activations/<int:activation_id>/cancel")
def cancel_activation(activation_id):
    current_key("policies:write")
    req = CancelActivationRequest().load(json_body())
    return json_response(policies.cancel_scheduled(ctx(), activation_id, req["reason"], actor(), request_id()))


@bp.get("/policies/active")
def active():
    current_key("policies:read")
    return json_response(policies.active(ctx()))


@bp.get("/policies/<version>")
def get_version(version):
    current_key("policies:read")
    return json_response(policies.get_version(ctx(), version))


@bp.post("/policies/validate")
def validate():
    current_key("policies:write")
    return json_response(policies.validate(ctx(), *_policy_text()))


@bp.post("/policies")
def publish():
    key = current_key("policies:write")
    if request.mimetype in YAML_TYPES:
        opts = PublishQuery().load(request.args.to_dict())
        text, source = request.get_data(as_text=True), opts["source"]
    else:
        opts = PublishRequest().load(json_body())
        text, source = opts["text"], opts["source"]
    body, changed = policies.publish(ctx(), text, source, actor(), key, request_id(),
                                     effective_from=opts["effective_from"], reason=opts["reason"])
    return json_response(body, 202 if body.get("pending") else 201 if changed else 200)


@bp.post("/policies/simulate")
def simulate_candidate():
    """What-if: the whole book under the active policy and the candidate (docs/simulation.md)."""
    current_key("policies:write")
    query = SimulateQuery().load(request.args.to_dict())
    if request.mimetype in YAML_TYPES:
        (text, source), as_of = _policy_text(), query["as_of"]
    else:
        req = SimulateRequest().load(json_body())
        text, source, as_of = req["text"], req["source"], req["as_of"] or query["as_of"]
    spool = simulate.ChangeSpool()
    try:
        decision_id, summary = simulate.simulate(ctx(), text, source, as_of, actor=actor(),
                                                 request_id=request_id(), sink=spool,
                                                 workers=current_app.config["SIMULATE_WORKERS"])
    except BaseException:
        spool.close()
        raise
    metrics().decision(simulate.KIND, None)
    if query["format"] == "csv":
        response = Response(simulate.csv_chunks(spool), 201, mimetype="text/csv")
    else:
        response = Response(simulate.json_chunks(decision_id, summary, spool), 201, mimetype="application/json")
    response.headers["X-Decision-Id"] = decision_id
    response.call_on_close(spool.close)
    return response

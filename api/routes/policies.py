from flask import Blueprint, current_app, request

from engine.compiler import compile_policy

from ..db import PolicyState, PolicyVersion
from ..schemas import PolicyTextRequest
from ._common import _json, actor, current_key, json_body, service

bp = Blueprint("policies", __name__)


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


def _policy_text() -> tuple[str, str]:
    if request.mimetype in YAML_TYPES:
        source = request.args.get("source") or "api"
        if len(source) > 512:                    # policy_versions.source
            from ..errors import invalid
            raise invalid({"source": ["at most 512 characters"]})
        return request.get_data(as_text=True), source
    req = PolicyTextRequest().load(json_body())
    return req["text"], req["source"]


def _view(row: PolicyVersion, state: PolicyState | None, with_text=True) -> dict:
    out = {"version": row.version, "name": row.name, "source": row.source,
           "created_at": row.created_at.isoformat() + "Z", "created_by": row.created_by,
           "active": bool(state and state.active_version == row.version)}
    if with_text:
        out["text"] = row.text
    return out


@bp.get("/policies/active")
def active():
    current_key("policies:read")
    with service().tx() as s:
        state = s.get(PolicyState, 1)
        row = s.get(PolicyVersion, state.active_version)
        out = _view(row, state)
        out.update(activated_at=state.activated_at.isoformat() + "Z", activated_by=state.activated_by)
        return _json(out)


@bp.get("/policies/<version>")
def get_version(version):
    current_key("policies:read")
    with service().tx() as s:
        row = s.get(PolicyVersion, version)
        if row is None:
            from ..errors import not_found
            raise not_found("policy version", version)
        return _json(_view(row, s.get(PolicyState, 1)))


@bp.post("/policies/validate")
def validate():
    current_key("policies:write")
    text, source = _policy_text()
    policy = compile_policy(text, source)        # PolicyInvalid → 422 with every error
    policy.dispose()
    return _json({"valid": True, "version": policy.version, "rules": len(policy.rules)})


@bp.post("/policies")
def publish():
    current_key("policies:write")
    text, source = _policy_text()
    svc = service()
    with svc.tx() as s:
        policy, changed = svc.registry.publish(s, text, source, actor(), svc.clock())
        return _json({"version": policy.version, "name": policy.name, "changed": changed, "active": True},
                     201 if changed else 200)


@bp.post("/policies/simulate")
def simulate_candidate():
    """What-if: the whole book under the active policy and the candidate (docs/simulation.md)."""
    current_key("policies:write")
    from flask import Response

    from .. import simulate
    from ..schemas import SimulateQuery, SimulateRequest
    from ._common import metrics, request_id
    query = SimulateQuery().load(request.args.to_dict())
    if request.mimetype in YAML_TYPES:
        (text, source), as_of = _policy_text(), query["as_of"]
    else:
        req = SimulateRequest().load(json_body())
        text, source, as_of = req["text"], req["source"], req["as_of"] or query["as_of"]
    spool = simulate.ChangeSpool()
    try:
        decision_id, summary = simulate.simulate(service(), text, source, as_of, actor=actor(),
                                                 request_id=request_id(), sink=spool)
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

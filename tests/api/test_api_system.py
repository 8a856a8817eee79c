"""/healthz, /metrics, /openapi.json, /docs, and schemathesis over the live server."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from prometheus_client.parser import text_string_to_metric_families

from api_harness import day


def test_healthz(api):
    r = api.get("/healthz", role=None)
    assert r.status_code == 200
    active = api.get("/v1/policies/active", role="controller").json()["version"]
    body = r.json()
    assert {k: body[k] for k in ("status", "policy_version")} == {"status": "ok", "policy_version": active}
    # the shared database's outbox holds what other tests left: its shape here, its values in test_outbox_statements
    assert set(body) == {"status", "policy_version", "outbox"}
    assert set(body["outbox"]) == {"oldest_queued_age_seconds", "dead_letters"}
    assert type(body["outbox"]["dead_letters"]) is int


def _samples(api) -> dict:
    r = api.get("/metrics", role=None)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _delta(before, after, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_metrics_count_requests_and_decisions_by_outcome(api):
    cid = api.customer(credit_score=65)                     # limit 200,000
    before = _samples(api)
    for _ in range(3):
        api.get("/healthz", role=None)
    for amount in ("10.00", "20.00"):
        assert api.credit_check(cid, amount).json()["outcome"] == "approve"
    assert api.credit_check(cid, "250000.00").json()["outcome"] == "reject"
    assert api.credit_check(cid, "185000.00").json()["outcome"] == "refer"        # 92.5 % of the limit
    api.get("/v1/no-such-route")
    api.get("/v1/audit/verify", role="sales")               # 403
    api.event(cid, "payment_received", {"amount": "1.00", "paid_on": day(0)})
    after = _samples(api)

    req = "creditctl_http_requests_total"
    assert _delta(before, after, req, method="GET", route="/healthz", status="200") == 3
    assert _delta(before, after, req, method="POST", route="/v1/credit-checks", status="201") == 4
    assert _delta(before, after, req, method="GET", route="unmatched", status="404") == 1
    assert _delta(before, after, req, method="GET", route="/v1/audit/verify", status="403") == 1
    assert _delta(before, after, req, method="GET", route="/metrics", status="200") == 1      # the first scrape
    dec = "creditctl_decisions_total"
    assert _delta(before, after, dec, kind="credit_check", outcome="approve") == 2
    assert _delta(before, after, dec, kind="credit_check", outcome="reject") == 1
    assert _delta(before, after, dec, kind="credit_check", outcome="refer") == 1
    assert _delta(before, after, dec, kind="event", outcome="none") == 1
    assert _delta(before, after, "creditctl_http_request_seconds_count", route="/v1/credit-checks") == 4


def _flask_routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            out |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def test_openapi_is_valid_and_complete(api):
    from jsonschema import Draft4Validator
    from schemathesis.specs.openapi.definitions import OPENAPI_30   # the official OpenAPI 3.0 JSON Schema

    r = api.get("/openapi.json", role=None)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    spec = r.json()
    assert spec["openapi"].startswith("3.0")
    errors = sorted(Draft4Validator(OPENAPI_30).iter_errors(spec), key=str)
    assert not errors, [e.message for e in errors[:5]]
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/v1/")}
    assert documented == _flask_routes(api.app)
    # every reference resolves, every /v1 operation needs a bearer key and names its path parameters
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', r.text))
    assert refs and refs <= set(spec["components"]["schemas"])
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path.startswith("/v1/"):
                assert op["security"] == [{"bearer": []}], (method, path)
                assert "401" in op["responses"] and "403" in op["responses"]
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)


def test_docs_page(api):
    r = api.get("/docs", role=None)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert 'href=/openapi.json' in r.text
    for method, path in _flask_routes(api.app):
        assert f"<code>{method.upper()}</code></td><td><code>{path}</code>" in r.text, (method, path)


def _schemathesis(api, tmp_path, role: str, max_examples: int, coverage: bool) -> str:
    """One schemathesis run from /openapi.json against the live server with `role`'s key: no 5xx, and
    every answer has a declared status, media type and body schema. Returns its output."""
    cid = api.customer(f"C-st-{role}")
    api.invoice(cid, "1000.00", due=7, issued=-3)           # and a payment reminder action
    decision = api.credit_check(cid, "100.00", reserve=True, order_id=f"O-st-{role}").json()["decision_id"]
    version = api.get("/healthz", role=None).json()["policy_version"]
    config = tmp_path / f"schemathesis-{role}.toml"
    config.write_text(f"""
seed = 20261215
# one worker: with two, schemathesis 4.1.4 now and then reports a hypothesis "Flaky" fuzzing result
# with no failing request behind it (the server answered no 5xx); one worker is as fast on two cores
workers = 1
[generation]
max-examples = {max_examples}
database = "none"
[phases.coverage]
enabled = {str(coverage).lower()}
[checks]
enabled = false
[checks.not_a_server_error]
enabled = true
[checks.status_code_conformance]
enabled = true
[checks.content_type_conformance]
enabled = true
[checks.response_schema_conformance]
enabled = true
[headers]
Authorization = "Bearer {api.keys[role]}"
[parameters]
"path.customer_id" = "{cid}"
"path.decision_id" = "{decision}"
"path.version" = "{version}"
# a whole customer case in the body: the coverage phase's many boundary variants of it alone would take
# longer than the rest together; its fuzzed examples still run
[[operations]]
include-name = "POST /v1/evaluate"
phases.coverage.enabled = false
# likewise a ledger event: one body schema per event type (anyOf of nine), each with its boundary variants
[[operations]]
include-name = "POST /v1/events"
phases.coverage.enabled = false
# and the customer list: nine filters, four sorts, a search and a cursor give ~4,000 boundary combinations
# (most of this run's time); tests/api/test_customer_list.py pins each filter, sort and page; fuzzed still
[[operations]]
include-name = "GET /v1/customers"
phases.coverage.enabled = false
""", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
                        f"{api.base_url}/openapi.json", "--no-color"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)   # a hang guard: 60-odd operations
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", out)      # and none failed, errored or skipped
    assert cases and cases.group(1) == cases.group(2) and re.search(r"(\d+) generated, \d+ passed\n", out), out[-6000:]
    if role == "admin":            # a key that may do everything reaches every operation with valid data
        assert "No issues found" in out, out[-6000:]
    tested = re.search(r"Tested:\s+(\d+)", out)
    assert tested and int(tested.group(1)) == len(_flask_routes(api.app)) + 2, out[-3000:]   # + /healthz, /metrics
    return out


def test_schemathesis_finds_no_server_errors_and_only_declared_answers(fresh, tmp_path):
    """Property-based requests against the live server with the admin key (who may do everything, so every
    operation's success answers are reached): no 5xx (`not_a_server_error`), and every answer's status,
    media type and body as the spec declares them. Bounded: 20 examples per operation and phase."""
    _schemathesis(fresh, tmp_path, "admin", 20, coverage=True)


@pytest.mark.parametrize("role", ["sales", "backoffice", "controller", "auditor"])
def test_schemathesis_with_every_roles_key(api, tmp_path, role):
    """The same checks with each other role's key: what a role may not do is a declared 403, what it may do
    answers as declared. Bounded: 3 examples per operation, no boundary-coverage phase."""
    _schemathesis(api, tmp_path, role, 3, coverage=False)


def test_customers_list_searches_by_id_or_name_and_pages_in_id_order(api):
    from api_harness import uid
    prefix = uid("L")
    token = prefix[-6:]
    ids = [f"{prefix}-{n}" for n in range(5)]
    for n, cid in enumerate(ids):
        api.customer(cid, name=f"华东贸易{token}有限公司 {n}" if n % 2 == 0 else f"Acme {token} Ltd {n}")
    everything = api.get(f"/v1/customers?q={prefix}", role="sales").json()
    assert [c["id"] for c in everything["customers"]] == ids and everything["next_cursor"] is None
    assert everything["customers"][0]["name"] == f"华东贸易{token}有限公司 0"
    pages, cursor = [], None
    while True:
        r = api.get(f"/v1/customers?q={prefix}&limit=2" + (f"&cursor={cursor}" if cursor else ""), role="backoffice")
        assert r.status_code == 200, r.text
        pages.append([c["id"] for c in r.json()["customers"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[:2], ids[2:4], ids[4:]]
    chinese = api.get(f"/v1/customers?q=贸易{token}", role="controller").json()["customers"]
    assert [c["id"] for c in chinese] == ids[0::2]
    assert [c["id"] for c in api.get(f"/v1/customers?q=acme {token.upper()}").json()["customers"]] == ids[1::2]
    assert [c["id"] for c in api.get(f"/v1/customers?q={ids[3]}").json()["customers"]] == [ids[3]]
    assert api.get("/v1/customers", role="auditor").status_code == 403
    for bad in ("limit=0", "limit=201", "limit=x", "page=2"):
        r = api.get(f"/v1/customers?{bad}")
        assert r.status_code == 422 and r.json()["code"] == "E_INPUT_INVALID", bad

"""Hardening of the HTTP input (issue 9): bodies that are too deep, too large, not UTF-8 JSON, with duplicate
keys or lone surrogates; the one money rule; strict booleans; dates that can't be meant; event data schemas;
filters that can't match. Every refusal is the one JSON error shape, a 4xx, and writes nothing."""

from __future__ import annotations

import json

import pytest

from api_harness import day, uid

JSON = {"Content-Type": "application/json"}
# every endpoint that reads a JSON body (path templates filled per test)
JSON_ENDPOINTS = [
    ("POST", "/v1/credit-checks"),
    ("POST", "/v1/events"),
    ("PUT", "/v1/customers/{cid}"),
    ("POST", "/v1/evaluate"),
    ("POST", "/v1/customers/{cid}/evaluate"),
    ("POST", "/v1/sweeps"),
    ("POST", "/v1/policies/validate"),
    ("PUT", "/v1/customers/{cid}/contacts"),
    ("PUT", "/v1/customers/{cid}/hold"),
    ("POST", "/v1/reviews"),
    ("POST", "/v1/referrals/expire"),
]


@pytest.fixture(scope="session")
def cid(shared):
    return shared.customer()


def send(api, method, path, body: bytes, headers=None, role="admin"):
    return api.request(method, path, role, data=body, headers={**JSON, **(headers or {})})


def refused(r, status, code, fields=()):
    """The one error shape, with its status and code, naming the fields."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    err = r.json()
    assert set(err) == {"code", "message", "errors"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    for f in fields:
        assert f in err["errors"], err
    return err


def credit_check(cid, **over):
    body = {"customer_id": cid, "order_id": uid("O"), "amount": "100.00", "currency": "CNY"}
    body.update(over)
    return body


# ---------------------------------------------------------------------------------------- 1. nesting depth
def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


@pytest.mark.parametrize("method,path", JSON_ENDPOINTS)
def test_json_nested_deeper_than_32_is_400_on_every_json_endpoint(api, cid, method, path):
    before = api.counts()
    for body in (nested(1000), "[" * 5000 + "]" * 5000, nested(1000)[:-500], "[" * 100000):
        r = send(api, method, path.format(cid=cid), body.encode())
        refused(r, 400, "E_JSON_DEPTH")
    assert api.counts() == before


def test_the_depth_scan_is_linear_on_quotes_and_backslashes(api, cid):
    # '"\\"\\…' never closes a string: a backtracking string pattern rescans the rest from every quote
    for body in ('{"a": ' + '"\\' * 200000, '{"a": ' + '\\"' * 200000, '"' * 500000):
        refused(send(api, "POST", "/v1/credit-checks", body.encode(), role="sales"), 400, "E_MALFORMED_JSON")


def test_json_depth_is_counted_outside_strings_and_32_levels_pass_the_parser(api, cid):
    # brackets inside strings are text, not nesting: the request reaches the schema (which names the field)
    r = send(
        api,
        "POST",
        "/v1/credit-checks",
        json.dumps(credit_check(cid, order_id="[[[[" * 20 + '"\\"{{{{' * 20)).encode(),
        role="sales",
    )
    assert r.status_code == 422 and "order_id" in r.json()["errors"], r.text
    r = send(
        api,
        "POST",
        "/v1/credit-checks",
        json.dumps({**credit_check(cid), "x": json.loads(nested(31))}).encode(),
        role="sales",
    )
    refused(r, 422, "E_INPUT_INVALID", ("x",))  # 32 levels with the body itself: parsed, then refused
    r = send(
        api,
        "POST",
        "/v1/credit-checks",
        json.dumps({**credit_check(cid), "x": json.loads(nested(32))}).encode(),
        role="sales",
    )
    refused(r, 400, "E_JSON_DEPTH")


# ---------------------------------------------------------------------------------------- 2. size and media type
def test_a_body_over_1_mib_is_413_in_the_json_shape(api, cid):
    before = api.counts()
    body = json.dumps(credit_check(cid, pad="x" * (1024 * 1024))).encode()
    refused(send(api, "POST", "/v1/credit-checks", body, role="sales"), 413, "E_TOO_LARGE")
    refused(send(api, "POST", "/v1/events", body), 413, "E_TOO_LARGE")
    assert api.counts() == before
    # just under the limit is read (and refused by the schema for the unknown field, not for its size)
    small = json.dumps(credit_check(cid, pad="x" * (1024 * 1024 - 200))).encode()
    assert len(small) < 1024 * 1024
    refused(send(api, "POST", "/v1/credit-checks", small, role="sales"), 422, "E_INPUT_INVALID", ("pad",))


@pytest.mark.parametrize(
    "name,body,headers,status,code",
    [
        ("utf-16 with BOM", "utf-16", {}, 400, "E_MALFORMED_JSON"),
        ("utf-16-le", "utf-16-le", {}, 400, "E_MALFORMED_JSON"),
        ("utf-32", "utf-32", {}, 400, "E_MALFORMED_JSON"),
        ("utf-8 BOM", "utf-8-sig", {}, 400, "E_MALFORMED_JSON"),
        ("latin-1 bytes", "latin-1", {}, 400, "E_MALFORMED_JSON"),
        ("text/plain", "utf-8", {"Content-Type": "text/plain"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
        ("form", "utf-8", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
        ("xml", "utf-8", {"Content-Type": "application/xml"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
        (
            "charset utf-16",
            "utf-8",
            {"Content-Type": "application/json; charset=utf-16"},
            415,
            "E_UNSUPPORTED_MEDIA_TYPE",
        ),
    ],
)
def test_bodies_that_are_not_utf8_json_are_refused(api, cid, name, body, headers, status, code):
    before = api.counts()
    payload = credit_check(cid, customer_id=cid + ("é" if name == "latin-1 bytes" else ""))
    r = send(
        api, "POST", "/v1/credit-checks", json.dumps(payload, ensure_ascii=False).encode(body), headers, role="sales"
    )
    refused(r, status, code)
    assert api.counts() == before


def test_multipart_and_xml_bodies_are_415(api, cid):
    r = api.request("POST", "/v1/credit-checks", "sales", files={"body": ("b.json", json.dumps(credit_check(cid)))})
    refused(r, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    r = api.request("POST", "/v1/events", "admin", data=b"<event/>", headers={"Content-Type": "text/xml"})
    refused(r, 415, "E_UNSUPPORTED_MEDIA_TYPE")


def test_json_with_a_json_suffix_media_type_and_explicit_utf8_is_read(api, cid):
    r = send(
        api,
        "POST",
        "/v1/credit-checks",
        json.dumps(credit_check(cid)).encode(),
        {"Content-Type": "application/json; charset=UTF-8"},
        role="sales",
    )
    assert r.status_code == 201, r.text


def test_werkzeug_errors_answer_the_json_shape(api):
    refused(api.get("/v1/no-such-thing"), 404, "E_NOT_FOUND")
    refused(api.request("PATCH", "/v1/credit-checks"), 405, "E_METHOD_NOT_ALLOWED")
    refused(api.request("DELETE", "/v1/events"), 405, "E_METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------------------------------- 3. duplicate keys
def test_duplicate_json_keys_are_refused_naming_the_key(api, cid):
    before = api.counts()
    body = (
        '{"customer_id": "%s", "order_id": "%s", "amount": "100.00", "amount": "900000.00", "currency": "CNY"}'
        % (cid, uid("O"))
    ).encode()
    err = refused(send(api, "POST", "/v1/credit-checks", body, role="sales"), 400, "E_JSON_DUPLICATE_KEY", ("amount",))
    assert "amount" in err["message"]
    # nested objects too
    body = (
        '{"event_id": "%s", "type": "payment_received", "customer_id": "%s", "data": {"amount": "1.00", '
        '"paid_on": "%s", "amount": "2.00"}}' % (uid("ev"), cid, day(0))
    ).encode()
    refused(send(api, "POST", "/v1/events", body), 400, "E_JSON_DUPLICATE_KEY", ("amount",))
    assert api.counts() == before


# ---------------------------------------------------------------------------------------- 4. lone surrogates
@pytest.mark.parametrize("field", ["customer_id", "order_id"])
def test_a_lone_surrogate_in_a_credit_check_is_422_naming_the_field(api, cid, field):
    before = api.counts()
    body = json.dumps(credit_check(cid, **{field: "C\ud800x"})).encode()  # json.dumps writes "\ud800"
    assert b"\\ud800" in body
    refused(send(api, "POST", "/v1/credit-checks", body, role="sales"), 422, "E_INPUT_INVALID", (field,))
    assert api.counts() == before


def test_a_lone_surrogate_in_an_event_or_a_name_is_422_naming_the_field(api, cid):
    before = api.counts()
    ev = {
        "event_id": "ev-\udc00",
        "type": "payment_received",
        "customer_id": cid,
        "data": {"amount": "1.00", "paid_on": day(0)},
    }
    refused(send(api, "POST", "/v1/events", json.dumps(ev).encode()), 422, "E_INPUT_INVALID", ("event_id",))
    ev = {**ev, "event_id": uid("ev"), "data": {"amount": "1.00", "paid_on": day(0), "id": "P\ud83d"}}
    refused(send(api, "POST", "/v1/events", json.dumps(ev).encode()), 422, "E_INPUT_INVALID", ("data.id",))
    customer = {
        "name": "客户\ud800",
        "type": "enterprise",
        "industry": "services",
        "region": "local",
        "size": "large",
        "since": "2015-01-01",
    }
    refused(
        send(api, "PUT", f"/v1/customers/{uid('C')}", json.dumps(customer).encode()), 422, "E_INPUT_INVALID", ("name",)
    )
    assert api.counts() == before
    # a real astral character (a surrogate pair in JSON) is text, and is stored
    astral = uid("C")
    r = send(api, "PUT", f"/v1/customers/{astral}", json.dumps({**customer, "name": "客户 😀"}).encode())
    assert r.status_code == 201, r.text
    assert api.get(f"/v1/customers/{astral}").json()["name"] == "客户 😀"


# ---------------------------------------------------------------------------------------- 5. the money rule
BAD_AMOUNTS = [
    ("float", 1.5),
    ("float with zeros", 30000.50),
    ("float integral", 100.0),
    ("exponent number", 1e6),
    ("exponent string", "1e6"),
    ("padded", " 100.00 "),
    ("full-width digits", "１００"),
    ("underscore", "1_000"),
    ("plus sign", "+100"),
    ("leading point", ".5"),
    ("trailing point", "100."),
    ("three decimals", "100.000"),
    ("comma", "1,000.00"),
    ("arabic-indic digits", "١٠٠"),
    ("infinity", "Infinity"),
    ("NaN", "NaN"),
    ("bool", True),
    ("null", None),
    ("list", ["100"]),
]


@pytest.mark.parametrize("name,value", BAD_AMOUNTS, ids=[n for n, _ in BAD_AMOUNTS])
def test_amounts_are_decimal_strings_or_integers_on_credit_checks(api, cid, name, value):
    before = api.counts()
    literal = {"float with zeros": "30000.50", "exponent number": "1e6"}.get(name)
    body = json.dumps(credit_check(cid, amount="__AMOUNT__" if literal else value))
    if literal:
        body = body.replace('"__AMOUNT__"', literal)
    refused(send(api, "POST", "/v1/credit-checks", body.encode(), role="sales"), 422, "E_INPUT_INVALID", ("amount",))
    assert api.counts() == before


@pytest.mark.parametrize(
    "name,value",
    [
        b
        for b in BAD_AMOUNTS
        if b[0] in ("float", "exponent string", "padded", "full-width digits", "underscore", "three decimals")
    ],
)
def test_amounts_follow_the_rule_on_invoices_payments_instalments_and_credit_files(api, cid, name, value):
    before = api.counts()
    inv = {"id": uid("INV"), "amount": value, "currency": "CNY", "issued_on": day(-1), "due_on": day(29)}
    r = api.event(cid, "invoice_issued", inv, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.amount",))
    r = api.event(cid, "payment_received", {"amount": value, "paid_on": day(0)}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.amount",))
    r = api.event(cid, "promise_to_pay", {"amount": value, "made_on": day(0), "promised_on": day(3)}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.amount",))
    customer = {
        "type": "enterprise",
        "industry": "services",
        "region": "local",
        "size": "large",
        "since": "2015-01-01",
        "approved_limit": value,
    }
    refused(
        api.put(f"/v1/customers/{uid('C')}", customer, role="backoffice"), 422, "E_INPUT_INVALID", ("approved_limit",)
    )
    if isinstance(value, str):  # a query string is text: the string rule applies
        refused(
            api.get("/v1/referrals", role="controller", params={"min_amount": value}),
            422,
            "E_INPUT_INVALID",
            ("min_amount",),
        )
    assert api.counts() == before


def test_amount_strings_and_json_integers_are_accepted(api, cid):
    other = api.customer()
    for amount, shown in (("100", "100.00"), ("100.5", "100.50"), ("100.50", "100.50"), (100, "100.00")):
        r = api.credit_check(other, amount)
        assert r.status_code == 201, r.text
        assert r.json()["exposure_after_order"] == shown
    api.invoice(other, 1230, due=10)
    api.event(other, "payment_received", {"amount": "12.30", "paid_on": day(0)})
    assert api.get(f"/v1/customers/{other}").json()["credit"]["outstanding"] == "1217.70"


def test_the_openapi_money_schema_is_the_rule(api):
    spec = api.get("/openapi.json").json()
    amount = spec["components"]["schemas"]["CreditCheckRequest"]["properties"]["amount"]
    string = amount
    assert string["type"] == "string" and "JSON integer" in string["description"]
    import re

    pattern = re.compile(string["pattern"])
    assert pattern.search("30000.00") and pattern.search("7")
    for bad in ("1e6", " 100", "１００", "1_000", "100.000", "-1", "1.", ".5"):
        assert not pattern.search(bad), bad


# ---------------------------------------------------------------------------------------- 6. strict booleans
@pytest.mark.parametrize("value", ["yes", "true", "1", 1, 0, "false", None, []])
def test_reserve_is_a_json_boolean_only(api, cid, value):
    before = api.counts()
    r = api.credit_check(cid, "100.00", reserve=value)
    refused(r, 422, "E_INPUT_INVALID", ("reserve",))
    assert api.counts() == before


def test_a_contacts_primary_flag_is_a_json_boolean_only(api, cid):
    r = api.put(f"/v1/customers/{cid}/contacts", {"contacts": [{"name": "王经理", "primary": "yes"}]})
    refused(r, 422, "E_INPUT_INVALID")
    assert "primary" in json.dumps(r.json()["errors"])


# ---------------------------------------------------------------------------------------- 7. dates that can't be meant
def test_a_reservation_expiring_before_today_is_refused(api, cid):
    before = api.counts()
    r = api.credit_check(cid, "100.00", reserve=True, expires_on=day(-1))
    refused(r, 422, "E_INPUT_INVALID", ("expires_on",))
    assert api.counts() == before
    r = api.credit_check(cid, "100.00", reserve=True, expires_on=day(0))  # its last day is today
    assert r.status_code == 201 and r.json()["reserved"] is True, r.text


def test_a_payment_dated_after_the_events_day_is_refused(api, cid):
    before = api.counts()
    r = api.event(cid, "payment_received", {"amount": "1.00", "paid_on": day(1)}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.paid_on",))
    r = api.event(cid, "payment_received", {"amount": "1.00", "paid_on": day(6)}, as_of=day(5), expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.paid_on",))
    assert api.counts() == before
    api.event(cid, "payment_received", {"amount": "1.00", "paid_on": day(0)})


def test_every_date_of_something_that_happened_is_at_most_the_events_day(api, cid):
    """As a payment's: an invoice issued, a credit note, a promise made, a dispute opened or resolved, an
    instalment plan agreed after the event's as_of is refused (422 naming the field); due and promised
    days may lie ahead. The import refuses the same (tests/api/test_import_rules.py)."""
    inv = api.invoice(cid, "500.00", due=20, issued=-10)
    api.event(cid, "dispute_opened", {"id": uid("D"), "invoice_id": inv, "opened_on": day(0), "reason": "质量"})
    dispute = uid("D")
    api.event(cid, "dispute_opened", {"id": dispute, "invoice_id": inv, "opened_on": day(-1), "reason": "x"})
    before = api.counts()
    cases = [
        (
            "invoice_issued",
            {"id": uid("INV"), "amount": "10.00", "currency": "CNY", "issued_on": day(1), "due_on": day(31)},
            "data.issued_on",
        ),
        ("credit_note", {"id": uid("CN"), "invoice_id": inv, "amount": "1.00", "issued_on": day(2)}, "data.issued_on"),
        (
            "promise_to_pay",
            {"id": uid("PR"), "amount": "10.00", "made_on": day(1), "promised_on": day(9)},
            "data.made_on",
        ),
        ("dispute_opened", {"id": uid("D"), "invoice_id": inv, "opened_on": day(3), "reason": "x"}, "data.opened_on"),
        ("dispute_resolved", {"dispute_id": dispute, "resolved_on": day(1)}, "data.resolved_on"),
        (
            "instalment_plan_agreed",
            {
                "id": uid("IP"),
                "invoice_ids": [inv],
                "agreed_on": day(1),
                "instalments": [{"due_on": day(30), "amount": "500.00"}],
            },
            "data.agreed_on",
        ),
    ]
    for type_, data, field in cases:
        refused(api.event(cid, type_, data, expect=None), 422, "E_INPUT_INVALID", (field,))
    assert api.counts() == before
    # the same days are accepted with an event as_of at or after them, and due / promised days ahead are fine
    api.event(cid, "promise_to_pay", {"id": uid("PR"), "amount": "10.00", "made_on": day(0), "promised_on": day(9)})
    api.event(
        cid,
        "invoice_issued",
        {"id": uid("INV"), "amount": "10.00", "currency": "CNY", "issued_on": day(0), "due_on": day(31)},
    )


def test_a_customer_since_a_future_day_is_refused(api):
    before = api.counts()
    body = {"type": "enterprise", "industry": "services", "region": "local", "size": "large", "since": day(1)}
    refused(api.put(f"/v1/customers/{uid('C')}", body, role="backoffice"), 422, "E_INPUT_INVALID", ("since",))
    existing = api.customer()
    before = api.counts()
    r = api.event(existing, "customer_updated", {"since": day(30)}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.since",))
    assert api.counts() == before
    assert api.put(f"/v1/customers/{uid('C')}", {**body, "since": day(0)}, role="backoffice").status_code == 201


# ---------------------------------------------------------------------------------------- 8. event data schemas
def test_arrears_reason_and_dispute_resolved_refuse_unknown_fields(api):
    cid = api.customer()
    inv = api.invoice(cid, "100.00", due=-5)
    dispute = uid("D")
    api.event(cid, "dispute_opened", {"id": dispute, "invoice_id": inv, "opened_on": day(-1)})
    before = api.counts()
    r = api.event(cid, "arrears_reason_recorded", {"reason": "dispute", "note": "x"}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.note",))
    r = api.event(cid, "dispute_resolved", {"dispute_id": dispute, "resolved_on": day(0), "winner": "us"}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.winner",))
    r = api.event(cid, "dispute_resolved", {"dispute_id": dispute}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.resolved_on",))
    r = api.event(cid, "dispute_resolved", {"dispute_id": 7, "resolved_on": day(0)}, expect=None)
    refused(r, 422, "E_INPUT_INVALID", ("data.dispute_id",))
    assert api.counts() == before
    api.event(cid, "dispute_resolved", {"dispute_id": dispute, "resolved_on": day(0)})


def test_openapi_gives_every_event_type_its_data_schema(api):
    spec = api.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]

    def resolve(node):
        return schemas[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    mapping = body["discriminator"]["mapping"]
    from api.service.validation import EVENT_TYPES

    assert body["discriminator"]["propertyName"] == "type" and set(mapping) == set(EVENT_TYPES)
    assert sorted(o["$ref"] for o in body["anyOf"]) == sorted(mapping.values())
    for type_, target in mapping.items():
        event = resolve({"$ref": target})
        assert event["properties"]["type"]["enum"] == [type_]
        data = resolve(event["properties"]["data"])
        assert data["additionalProperties"] is False and data["properties"], type_
    assert set(resolve(resolve({"$ref": mapping["dispute_resolved"]})["properties"]["data"])["required"]) == {
        "dispute_id",
        "resolved_on",
    }


# ---------------------------------------------------------------------------------------- 9. filters that can't match
@pytest.mark.parametrize(
    "params,field",
    [
        ({"outcome": "rejection"}, "outcome"),
        ({"outcome": "bogus"}, "outcome"),
        ({"kind": "bogus"}, "kind"),
        ({"kind": "credit-check"}, "kind"),
        ({"since": "2026-12-10", "until": "2026-12-01"}, "since"),
        ({"since": "0001-01-01"}, "since"),
    ],
)
def test_decision_filters_that_cannot_match_are_422(api, params, field):
    refused(api.get("/v1/decisions", role="auditor", params=params), 422, "E_INPUT_INVALID", (field,))


def test_known_filters_still_answer(api):
    for params in (
        {"outcome": "reject"},
        {"outcome": "rejected"},
        {"kind": "trail_repair"},
        {"since": "2026-12-01", "until": "2026-12-01"},
    ):
        r = api.get("/v1/decisions", role="auditor", params=params)
        assert r.status_code == 200 and isinstance(r.json()["decisions"], list), r.text


@pytest.mark.parametrize(
    "params,field",
    [
        ({"min_amount": "10.00", "max_amount": "5.00"}, "min_amount"),
        ({"min_age_days": "9", "max_age_days": "3"}, "min_age_days"),
        ({"status": "closed"}, "status"),
    ],
)
def test_referral_filters_that_cannot_match_are_422(api, params, field):
    refused(api.get("/v1/referrals", role="controller", params=params), 422, "E_INPUT_INVALID", (field,))


def test_report_and_action_ranges_that_cannot_match_are_422(api):
    refused(
        api.get("/v1/reports/collections", role="auditor", params={"since": day(0), "until": day(-1)}),
        422,
        "E_INPUT_INVALID",
        ("since",),
    )
    refused(api.get("/v1/actions", params={"status": "bogus"}), 422, "E_INPUT_INVALID", ("status",))


def test_every_record_kind_the_code_writes_is_a_known_kind():
    """RECORD_KINDS lists every kind a trail record is written with: each `kind=` string of a call, each
    *KIND constant, each `"kind":` of a record dict, each `record_kind=` and each kind given to a record
    helper (a function named _record, record or append with a `kind` parameter, called in its module or another)."""
    import ast
    import pathlib

    from api.store.trail import RECORD_KINDS

    root = pathlib.Path(__file__).resolve().parents[2] / "api"
    not_records = {
        "importer/columns.py",
        "documents",
        "console",
        "delivery",
        "codes.py",  # other meanings
        "http/responses.py",
    }
    found: dict[str, str] = {}

    def strings(node):
        return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    helper_names = ("_record", "record", "append")

    def defined(tree) -> dict[str, int | None]:
        """{name: position of its `kind` argument, or None} of the module's functions named like a record helper."""
        return {
            f.name: [a.arg for a in f.args.args].index("kind") if "kind" in [a.arg for a in f.args.args] else None
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef) and f.name in helper_names
        }

    modules = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if not any(rel.startswith(p) or f"/{p}" in rel for p in not_records):
            modules.append((rel, ast.parse(path.read_text(encoding="utf-8"))))
    everywhere = {name: i for _, tree in modules for name, i in defined(tree).items() if i is not None}
    for rel, tree in modules:
        # a module's own function of that name first: one without a `kind` is no record helper
        helpers = {name: i for name, i in {**everywhere, **defined(tree)}.items() if i is not None}
        for node in ast.walk(tree):
            hits = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                hits += [v for kw in node.keywords if kw.arg in ("kind", "record_kind") for v in strings(kw.value)]
                if name in helpers and len(node.args) > helpers[name]:
                    hits += strings(node.args[helpers[name]])
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("KIND") for t in node.targets
            ):
                hits += strings(node.value)
            elif isinstance(node, ast.Dict):  # a record built as a dict: it has a subject and a kind
                keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
                if {"subject", "kind", "actor"} <= set(keys):
                    hits += strings(keys["kind"])
            for h in hits:
                found.setdefault(h, rel)
    assert set(RECORD_KINDS) - set(found) == set(), "RECORD_KINDS lists a kind nothing writes (or the scan missed it)"
    unknown = {k: where for k, where in found.items() if k not in RECORD_KINDS}
    assert unknown == {}, f"kinds written but not in api/store/trail.py RECORD_KINDS: {unknown}"


def test_imports_follow_the_money_rule_decimals_as_written(api):
    import io

    cust = uid("X")
    customers = f"id,name,type,industry,region,size,since\n{cust},导入客户,enterprise,services,local,large,2020-01-01\n"
    invoices = (
        "id,customer_id,amount,currency,issued_on,due_on\n"
        f"{uid('I')},{cust},100.000,CNY,2026-10-01,2026-10-31\n"  # worth 100.00, but 3 decimals
        f"{uid('I')},{cust},100.5,CNY,2026-10-01,2026-10-31\n"
    )  # fine
    files = [
        ("files", (n, io.BytesIO(t.encode()))) for n, t in (("customers.csv", customers), ("invoices.csv", invoices))
    ]
    r = api.request("POST", "/v1/imports", "backoffice", files=files)
    err = refused(r, 422, "E_IMPORT_INVALID", ("import",))
    assert [line for line in err["errors"]["import"] if line.startswith("invoices.csv:")] == [
        "invoices.csv:2:3: E_AMOUNT: amount: 100.000 has more than 2 decimal places"
    ], err

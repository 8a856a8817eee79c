"""Hardening of the HTTP input (issue 9): bodies that are too deep, too large, not UTF-8 JSON, with duplicate
keys or lone surrogates; the one money rule; strict booleans; dates that can't be meant; event data schemas;
filters that can't match. Every refusal is the one JSON error shape, a 4xx, and writes nothing."""
from __future__ import annotations

import json

import pytest

from api_harness import day, uid

JSON = {"Content-Type": "application/json"}
# every endpoint that reads a JSON body (path templates filled per test)
JSON_ENDPOINTS = [("POST", "/v1/credit-checks"), ("POST", "/v1/events"), ("PUT", "/v1/customers/{cid}"),
                  ("POST", "/v1/evaluate"), ("POST", "/v1/customers/{cid}/evaluate"), ("POST", "/v1/sweeps"),
                  ("POST", "/v1/policies/validate"), ("PUT", "/v1/customers/{cid}/contacts"),
                  ("PUT", "/v1/customers/{cid}/hold"), ("POST", "/v1/reviews"), ("POST", "/v1/referrals/expire")]


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


def test_json_depth_is_counted_outside_strings_and_32_levels_pass_the_parser(api, cid):
    # brackets inside strings are text, not nesting: the request reaches the schema (which names the field)
    r = send(api, "POST", "/v1/credit-checks", json.dumps(credit_check(cid, order_id="[[[[" * 20 + '"\\"{{{{' * 20))
             .encode(), role="sales")
    assert r.status_code == 422 and "order_id" in r.json()["errors"], r.text
    r = send(api, "POST", "/v1/credit-checks", json.dumps({**credit_check(cid), "x": json.loads(nested(31))})
             .encode(), role="sales")
    refused(r, 422, "E_INPUT_INVALID", ("x",))           # 32 levels with the body itself: parsed, then refused
    r = send(api, "POST", "/v1/credit-checks", json.dumps({**credit_check(cid), "x": json.loads(nested(32))})
             .encode(), role="sales")
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


@pytest.mark.parametrize("name,body,headers,status,code", [
    ("utf-16 with BOM", "utf-16", {}, 400, "E_MALFORMED_JSON"),
    ("utf-16-le", "utf-16-le", {}, 400, "E_MALFORMED_JSON"),
    ("utf-32", "utf-32", {}, 400, "E_MALFORMED_JSON"),
    ("utf-8 BOM", "utf-8-sig", {}, 400, "E_MALFORMED_JSON"),
    ("latin-1 bytes", "latin-1", {}, 400, "E_MALFORMED_JSON"),
    ("text/plain", "utf-8", {"Content-Type": "text/plain"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
    ("form", "utf-8", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
    ("xml", "utf-8", {"Content-Type": "application/xml"}, 415, "E_UNSUPPORTED_MEDIA_TYPE"),
    ("charset utf-16", "utf-8", {"Content-Type": "application/json; charset=utf-16"}, 415,
     "E_UNSUPPORTED_MEDIA_TYPE"),
])
def test_bodies_that_are_not_utf8_json_are_refused(api, cid, name, body, headers, status, code):
    before = api.counts()
    payload = credit_check(cid, customer_id=cid + ("é" if name == "latin-1 bytes" else ""))
    r = send(api, "POST", "/v1/credit-checks", json.dumps(payload, ensure_ascii=False).encode(body), headers,
             role="sales")
    refused(r, status, code)
    assert api.counts() == before


def test_multipart_and_xml_bodies_are_415(api, cid):
    r = api.request("POST", "/v1/credit-checks", "sales", files={"body": ("b.json", json.dumps(credit_check(cid)))})
    refused(r, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    r = api.request("POST", "/v1/events", "admin", data=b"<event/>", headers={"Content-Type": "text/xml"})
    refused(r, 415, "E_UNSUPPORTED_MEDIA_TYPE")


def test_json_with_a_json_suffix_media_type_and_explicit_utf8_is_read(api, cid):
    r = send(api, "POST", "/v1/credit-checks", json.dumps(credit_check(cid)).encode(),
             {"Content-Type": "application/json; charset=UTF-8"}, role="sales")
    assert r.status_code == 201, r.text


def test_werkzeug_errors_answer_the_json_shape(api):
    refused(api.get("/v1/no-such-thing"), 404, "E_NOT_FOUND")
    refused(api.request("PATCH", "/v1/credit-checks"), 405, "E_METHOD_NOT_ALLOWED")
    refused(api.request("DELETE", "/v1/events"), 405, "E_METHOD_NOT_ALLOWED")


# ---------------------------------------------------------------------------------------- 3. duplicate keys
def test_duplicate_json_keys_are_refused_naming_the_key(api, cid):
    before = api.counts()
    body = ('{"customer_id": "%s", "order_id": "%s", "amount": "100.00", "amount": "900000.00", "currency": "CNY"}'
            % (cid, uid("O"))).encode()
    err = refused(send(api, "POST", "/v1/credit-checks", body, role="sales"), 400, "E_JSON_DUPLICATE_KEY", ("amount",))
    assert "amount" in err["message"]
    # nested objects too
    body = ('{"event_id": "%s", "type": "payment_received", "customer_id": "%s", "data": {"amount": "1.00", '
            '"paid_on": "%s", "amount": "2.00"}}' % (uid("ev"), cid, day(0))).encode()
    refused(send(api, "POST", "/v1/events", body), 400, "E_JSON_DUPLICATE_KEY", ("amount",))
    assert api.counts() == before


# ---------------------------------------------------------------------------------------- 4. lone surrogates
@pytest.mark.parametrize("field", ["customer_id", "order_id"])
def test_a_lone_surrogate_in_a_credit_check_is_422_naming_the_field(api, cid, field):
    before = api.counts()
    body = json.dumps(credit_check(cid, **{field: "C\ud800x"})).encode()      # json.dumps writes "\ud800"
    assert b"\\ud800" in body
    refused(send(api, "POST", "/v1/credit-checks", body, role="sales"), 422, "E_INPUT_INVALID", (field,))
    assert api.counts() == before


def test_a_lone_surrogate_in_an_event_or_a_name_is_422_naming_the_field(api, cid):
    before = api.counts()
    ev = {"event_id": "ev-\udc00", "type": "payment_received", "customer_id": cid,
          "data": {"amount": "1.00", "paid_on": day(0)}}
    refused(send(api, "POST", "/v1/events", json.dumps(ev).encode()), 422, "E_INPUT_INVALID", ("event_id",))
    ev = {**ev, "event_id": uid("ev"), "data": {"amount": "1.00", "paid_on": day(0), "id": "P\ud83d"}}
    refused(send(api, "POST", "/v1/events", json.dumps(ev).encode()), 422, "E_INPUT_INVALID", ("data.id",))
    customer = {"name": "客户\ud800", "type": "enterprise", "industry": "services", "region": "local",
                "size": "large", "since": "2015-01-01"}
    refused(send(api, "PUT", f"/v1/customers/{uid('C')}", json.dumps(customer).encode()), 422, "E_INPUT_INVALID",
            ("name",))
    assert api.counts() == before
    # a real astral character (a surrogate pair in JSON) is text, and is stored
    astral = uid("C")
    r = send(api, "PUT", f"/v1/customers/{astral}", json.dumps({**customer, "name": "客户 😀"}).encode())
    assert r.status_code == 201, r.text
    assert api.get(f"/v1/customers/{astral}").json()["name"] == "客户 😀"

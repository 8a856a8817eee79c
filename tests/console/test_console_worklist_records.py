"""Promises and disputes recorded from the worklist (issue 14): the row's form posts the event the API takes
(the same use case: the customer is decided again, the decision is in the trail with the person as actor);
a dispute without a reason is refused and writes nothing. The console's own app, no browser needed."""

from __future__ import annotations

import re

from console_harness import PASSWORD

from api_harness import day


def _signed_in(api, role):
    client = api.app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text).group(1)
    r = client.post("/console/sign-in", data={"csrf_token": token, "name": api.people[role], "password": PASSWORD})
    assert r.status_code == 302
    page = client.get("/console/worklist").text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1), page


def test_a_collector_records_a_promise_and_a_dispute_from_the_worklist(console):
    api = console
    cid = api.customer(f"C-wl-{api.backend}", name="成都天府食品有限公司", size="medium", collector="li.collector")
    inv = api.invoice(cid, "18000.00", due=-1, issued=-31)  # overdue since yesterday: an action today
    r = api.post("/v1/sweeps", {"as_of": api.service.today().isoformat()}, role="controller")
    assert r.status_code == 201, r.text
    client, token, page = _signed_in(api, "backoffice")
    found = re.search(r'id="action-(\d+)"', page)
    assert found, page[-3000:]
    action_id = int(found.group(1))
    assert f"/console/actions/{action_id}/record" in page
    before = api.counts()
    r = client.post(
        f"/console/actions/{action_id}/record",
        data={"csrf_token": token, "record": "dispute", "reason": " "},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422 and "reason" in r.text and api.counts() == before
    r = client.post(
        f"/console/actions/{action_id}/record",
        data={"csrf_token": token, "record": "promise", "amount": "18000.00", "promised_on": day(5)},
    )
    assert r.status_code == 200 and 'data-kind="promise"' in r.text and "8,000.00" in r.text, r.text
    r = client.post(
        f"/console/actions/{action_id}/record", data={"csrf_token": token, "record": "dispute", "reason": "货物破损"}
    )
    assert r.status_code == 200 and "货物破损" in r.text
    after = api.counts()
    assert after["promises"] == before["promises"] + 1 and after["disputes"] == before["disputes"] + 1
    events = api.get("/v1/decisions", role="auditor", params={"customer": cid, "kind": "event"}).json()["decisions"]
    assert [d["actor"] for d in events].count(api.people["backoffice"]) == 2  # the invoice: test-backoffice
    with api.service.read_tx() as s:
        from api.store.tables import Dispute, Promise

        promise = s.query(Promise).filter_by(customer_id=cid).one()
        dispute = s.query(Dispute).filter_by(customer_id=cid).one()
        assert (promise.invoice_id, promise.amount_minor, promise.promised_on.isoformat()) == (inv, 1800000, day(5))
        assert (dispute.invoice_id, dispute.reason) == (inv, "货物破损")

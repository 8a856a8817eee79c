"""Collection actions: created once by decisions, listed with filters and a cursor, completed once."""

from __future__ import annotations

from api_harness import NOW, day, uid


def test_actions_are_created_once_listed_and_completed_once(api):
    cid = api.customer()
    invoices = [api.invoice(cid, "80.00", due=days, issued=-5) for days in (7, 3, 1)]  # reminders due today
    api.post(f"/v1/customers/{cid}/evaluate", {}, role="backoffice")  # decides again: no copies
    r = api.get("/v1/actions", role="backoffice", params={"customer": cid})
    assert r.status_code == 200
    actions = r.json()["actions"]
    assert sorted(a["invoice_id"] for a in actions) == sorted(invoices)
    assert {(a["type"], a["channel"], a["owner"], a["status"], a["due_on"], a["amount"]) for a in actions} == {
        ("payment_reminder", "email", "automated", "open", day(0), "80.00")
    }

    # a cursor walk, one at a time, sees each once
    seen, cursor = [], None
    while True:
        params = {"customer": cid, "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = api.get("/v1/actions", role="backoffice", params=params).json()
        seen += [a["id"] for a in body["actions"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["id"] for a in actions]

    first = actions[0]["id"]
    r = api.post(
        f"/v1/actions/{first}/complete", {"outcome": "sent", "channel": "sms", "note": "ok"}, role="backoffice"
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"], done["channel"], done["note"], done["completed_by"]) == (
        "done",
        "sent",
        "sms",
        "ok",
        "test-backoffice",
    )
    assert done["completed_at"] == NOW.isoformat() + "Z"
    counts = api.counts()
    r = api.post(f"/v1/actions/{first}/complete", {"outcome": "again"}, role="controller")
    assert r.status_code == 409 and r.json()["code"] == "E_CONFLICT"
    assert api.counts() == counts
    open_ = api.get("/v1/actions", role="backoffice", params={"customer": cid}).json()["actions"]
    assert first not in {a["id"] for a in open_} and len(open_) == 2
    assert [
        a["id"]
        for a in api.get("/v1/actions", role="backoffice", params={"customer": cid, "status": "done"}).json()["actions"]
    ] == [first]
    assert (
        api.get("/v1/actions", role="backoffice", params={"customer": cid, "owner": uid("nobody")}).json()["actions"]
        == []
    )

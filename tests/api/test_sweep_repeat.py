"""Stage actions that happen once, on the right day, over a multi-day sweep run (docs/dunning.md "How often"):
one written demand and one lawyer's letter per stage-2 episode, however many cadence days pass; a visit task
stays open until done and is created again on the next cadence day only once it is done; a small account's
write-off review is created on day 91, once, and it never goes to litigation."""

from __future__ import annotations

import collections

from test_sweep import MEDIUM, TEAM, action_rows, d, invoice, iso, run, state

from api.jobs import sweep


def by_type(api, cid) -> dict:
    """type → the days (ISO) it was created for, of the customer's stage actions."""
    out = collections.defaultdict(list)
    for _, _, kind, stage, due_on, *_ in action_rows(api, cid):
        if stage > 0:
            out[kind].append(due_on)
    return {k: sorted(v) for k, v in out.items()}


def test_once_and_until_done_over_a_multi_day_sweep(fresh):
    api = fresh
    medium = api.customer("R-medium", **MEDIUM)
    m1 = invoice(api, medium, "20000.00", due=-31)  # day 0: 31 days overdue, stage 2 entered
    small = api.customer("R-small", **MEDIUM)
    invoice(api, small, "5000.00", due=-31)
    malicious = api.customer("R-small-malicious", arrears_reason="malicious_delay", **MEDIUM)
    invoice(api, malicious, "5000.00", due=-31)

    for n in (0, 14, 28):  # stage 2 cadence days 31, 45, 59 overdue
        run(api, n)
    assert state(api, medium) == (2, d(0))
    # the visit of day 0 is still open: not created again on days 14 and 28
    assert by_type(api, medium) == {"visit": [iso(0)], "written_demand": [iso(0)], "lawyer_letter": [iso(0)]}
    visit = next(
        a
        for a in api.get("/v1/actions", role="backoffice", params={"customer": medium}).json()["actions"]
        if a["type"] == "visit"
    )
    assert visit["owner"] == TEAM
    r = api.post(f"/v1/actions/{visit['id']}/complete", {"outcome": "met", "note": "面谈"}, role="controller")
    assert r.status_code == 200, r.text
    for n in (30, 42, 56):  # 61 (no cadence day), 73 and 87 days overdue
        run(api, n)
    # done on day 28: a new visit on the next cadence day (42), which stays open on day 56; still one lawyer's
    # letter and one written demand after five cadence days (it was five of each before)
    assert by_type(api, medium) == {"visit": [iso(0), iso(42)], "written_demand": [iso(0)], "lawyer_letter": [iso(0)]}
    assert {a[6] for a in action_rows(api, medium) if a[2] == "visit"} == {"done", "open"}

    for n in (59, 60, 61, 74):  # 90, 91, 92 and 105 days overdue
        run(api, n)
    for cid in (small, malicious):  # never litigation, malicious or not
        assert state(api, cid)[0] == 2
        got = by_type(api, cid)
        assert got["write_off_review"] == [iso(60)], got  # day 91, once
        assert "litigation" not in got and "lawyer_letter" not in got
    medium_now = by_type(api, medium)  # the medium account: stage 3 at 91, litigation once
    # stage 3 from day 60; its litigation referral opened a legal case, which holds the invoice from day 61
    # (the stage is held, docs/dunning.md "Legal cases")
    assert state(api, medium) == (3, None)
    assert (medium_now["litigation"], medium_now["asset_preservation"]) == ([iso(60)], [iso(60)])
    assert m1 in {a[1] for a in action_rows(api, medium)}


def test_a_missed_day_creates_the_once_action_on_the_next_sweep(fresh):
    api = fresh
    small = api.customer("R-missed", **MEDIUM)
    invoice(api, small, "5000.00", due=-31)
    run(api, 0)
    first = sweep.run_sweep(api.service, d(62), "test")  # 93 days overdue: days 91 and 92 were not swept
    assert first["errors"] == 0
    assert by_type(api, small)["write_off_review"] == [iso(62)]
    run(api, 63)
    assert by_type(api, small)["write_off_review"] == [iso(62)]

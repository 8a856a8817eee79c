"""A reservation's life is bounded by the policy (credit.reservation_days), 30 days when it says nothing."""

from __future__ import annotations

import pathlib

from api_harness import POLICY_FILE, day


def _with_reservation_days(n: int) -> str:
    text = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8")
    assert "\n  reservation_days: 30 " in text
    return text.replace("\n  reservation_days: 30 ", f"\n  reservation_days: {n} ", 1)


def test_the_policy_bounds_how_long_an_order_is_held(fresh):
    cid = fresh.customer()
    assert fresh.credit_check(cid, "10.00", reserve=True, expires_on=day(30)).json()["reserved"] is True
    assert fresh.credit_check(cid, "10.00", reserve=True, expires_on=day(31)).status_code == 422
    r = fresh.post("/v1/policies", {"text": _with_reservation_days(10), "source": "short.yaml"}, role="controller")
    assert r.status_code == 201, r.text
    too_long = fresh.credit_check(cid, "10.00", reserve=True, expires_on=day(11))
    assert too_long.status_code == 422 and "reservation_days" in too_long.json()["errors"]["expires_on"][0]
    assert fresh.credit_check(cid, "10.00", reserve=True, expires_on=day(10)).json()["reserved"] is True
    order = fresh.credit_check(cid, "10.00", reserve=True).json()["order_id"]
    from api.store.tables import Reservation

    with fresh.service.read_tx() as s:
        assert s.get(Reservation, order).expires_on.isoformat() == day(10)
    bad = fresh.post("/v1/policies/validate", {"text": _with_reservation_days(0)}, role="controller")
    assert bad.status_code == 422 and "reservation_days" in bad.text

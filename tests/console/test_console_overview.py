"""The overview's book figures come from the sweep's snapshot (api/reports/figures.py) with its day, source
and time; without one for the day and the active policy, a small book is computed live and a large one shows
the latest snapshot marked as such (no browser needed: the console's own app, signed in)."""

from __future__ import annotations

import pathlib
import re

from console_harness import PASSWORD

from api_harness import POLICY_FILE


def _signed_in(api, role="controller"):
    client = api.app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text).group(1)
    r = client.post("/console/sign-in", data={"csrf_token": token, "name": api.people[role], "password": PASSWORD})
    assert r.status_code == 302
    return client


def _source(html: str) -> str:
    return re.search(r'id="figures-source" data-source="(\w+)"', html).group(1)


def _receivables(html: str) -> str:
    return re.search(r'id="kpi-receivables">([^<]+)<', html).group(1)


def test_overview_figures_from_the_snapshot_then_live_or_marked_stale(console):
    api = console
    cid = api.customer(f"C-ov-{api.backend}", name="重庆山城建材有限公司")
    api.invoice(cid, "64000.00", due=-35, issued=-65)
    client = _signed_in(api)
    api.app.config["CONSOLE_LIVE_FIGURES_MAX"] = 0  # as if the book were large
    html = client.get("/console/overview/figures").text
    assert _source(html) == "none" and "kpi-receivables" not in html
    r = api.post("/v1/sweeps", {"as_of": api.service.today().isoformat()}, role="controller")
    assert r.status_code == 201, r.text
    html = client.get("/console/overview/figures").text
    assert _source(html) == "snapshot" and _receivables(html) == "64,000.00"
    assert f"批处理决策 {r.json()['id']}" in html
    # a new policy version: the day's snapshot is not its figures
    text = pathlib.Path(POLICY_FILE).read_text(encoding="utf-8").replace("  description:", "  description: (v2)", 1)
    assert api.post("/v1/policies", {"text": text, "source": "test"}, role="admin").status_code == 201
    html = client.get("/console/overview/figures").text
    assert _source(html) == "stale" and "下次批处理后更新" in html and _receivables(html) == "64,000.00"
    api.app.config["CONSOLE_LIVE_FIGURES_MAX"] = 5000  # a small book: read whole
    api.invoice(cid, "1000.00", due=20, issued=-10)
    html = client.get("/console/overview/figures").text
    assert _source(html) == "live" and _receivables(html) == "65,000.00"

"""The console's Referrals page (issue 14) in a real browser against a real server, SQLite and PostgreSQL:
a credit check that refers is in the queue with its order, amount, customer, reasons, age and the level its
release needs; a controller without that level may not release it, one with it releases it with a
condition, it leaves the queue, and the trail has the release with the person as actor."""

from __future__ import annotations

import re

from console_harness import PASSWORD, nav_labels, shot, sign_in

from api.service import users


def _referred(api, name: str, amount: str = "460000.00") -> dict:
    """Limit 500,000 (score 85): 460,000 is 92 % of it, so check.high_utilisation refers (0 over the limit:
    the lowest level, team_lead, may release it)."""
    cid = api.customer(f"C-ref-{len(name)}-{api.backend}", name=name)
    r = api.credit_check(cid, amount, role="sales")
    assert r.status_code == 201 and r.json()["outcome"] == "refer", r.text
    return r.json()


def test_a_referred_check_is_released_by_a_controller_with_the_level_and_leaves_the_queue(console, page):
    api = console
    users.create_user(api.service, "赵主管", "controller", PASSWORD, authority="credit_manager")
    api.people["manager"] = "赵主管"
    body = _referred(api, "北京远航物流有限公司")
    ref, order = body["referral"], body["order_id"]
    # a controller who holds no level sees the referral and what it needs, but no release button
    sign_in(page, api, "controller")
    assert "审批" in nav_labels(page)
    page.click("header nav >> text=审批")
    row = page.locator(f"#referral-{ref['id']}")
    row.wait_for()
    text = row.inner_text()
    assert order in text and "北京远航物流有限公司" in text and "460,000.00" in text and "0 天" in text
    assert [x["rule"] for x in ref["reasons"]] == ["check.high_utilisation"] and ref["reasons"][0]["message"] in text
    assert row.locator("td.level").inner_text() == "team_lead"
    assert row.locator("button.release").count() == 0 and "team_lead" in row.locator(".needs").inner_text()
    page.click("#sign-out")
    sign_in(page, api, "manager")
    page.goto(api.base_url + "/console/referrals")
    shot(page, api.backend, "referrals")
    row = page.locator(f"#referral-{ref['id']}")
    row.locator("input[name=reason]").fill("客户历史良好，收取保证金后放行")
    row.locator("select[name=condition]").select_option("deposit")
    row.locator("input[name=condition_amount]").fill("50000.00")
    row.locator("button.release").click()
    done = page.locator(f"#referral-{ref['id']}[data-status=released]")
    done.wait_for()
    assert "赵主管" in done.inner_text() and "收取保证金后放行" in done.inner_text()
    # the same service function as the API: the order is released by the person, with its condition
    got = api.get(f"/v1/credit-checks/{order}", role="controller").json()
    assert got["status"] == "released" and got["referral"]["closed_by"] == "赵主管"
    assert got["referral"]["conditions"] == [{"type": "deposit", "amount": "50000.00", "note": None}]
    page.reload()
    assert page.locator(f"#referral-{ref['id']}").count() == 0 and "没有待审批" in page.inner_text("#referrals")
    # the trail has the release, by the person, after the check that referred
    page.goto(api.base_url + f"/console/trail?customer={ref['customer_id']}")
    rows = [re.split(r"\t", t) for t in page.locator("#decisions tbody tr").all_inner_texts()]
    kinds = [(r[3].strip(), r[4].strip(), r[5].strip()) for r in rows]
    assert ("referral_release", "released", "赵主管") in kinds and ("credit_check", "refer", "test-sales") in kinds
    shot(page, api.backend, "referral-trail")


def _client(api, role: str):
    client = api.app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text).group(1)
    r = client.post("/console/sign-in", data={"csrf_token": token, "name": api.people[role], "password": PASSWORD})
    assert r.status_code == 302
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/overview").text).group(1)
    return client, token


def test_reject_needs_a_reason_release_needs_the_level_and_an_auditor_only_reads(console):
    api = console
    ref = _referred(api, "广州南方电子有限公司")["referral"]
    path = f"/console/referrals/{ref['id']}"
    boss, token = _client(api, "controller")  # no authority level
    before = api.counts()
    r = boss.post(path + "/reject", data={"csrf_token": token, "reason": "  "}, headers={"HX-Request": "true"})
    assert r.status_code == 422 and "reason" in r.text and r.headers["HX-Retarget"] == "#flash"
    r = boss.post(path + "/release", data={"csrf_token": token, "reason": "放行"})
    assert r.status_code == 403 and "E_AUTHORITY_REQUIRED" in r.text and "team_lead" in r.text
    auditor, atoken = _client(api, "auditor")
    page = auditor.get("/console/referrals")
    assert page.status_code == 200 and ref["order_id"] in page.text and 'button class="release"' not in page.text
    r = auditor.post(path + "/reject", data={"csrf_token": atoken, "reason": "不行"})
    assert r.status_code == 403 and "E_FORBIDDEN" in r.text
    assert api.counts() == before
    r = boss.post(path + "/reject", data={"csrf_token": token, "reason": "额度不足，拒绝"})
    assert r.status_code == 200 and 'data-status="rejected"' in r.text and "额度不足，拒绝" in r.text
    got = api.get(f"/v1/credit-checks/{ref['order_id']}", role="controller").json()
    assert got["status"] == "rejected" and got["referral"]["closed_by"] == api.people["controller"]
    assert ref["id"] not in boss.get("/console/referrals").text

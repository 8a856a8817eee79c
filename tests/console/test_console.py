"""The console end to end, in a real browser (Playwright + Debian's chromium) against a real server
on SQLite and PostgreSQL: a journey per role, navigation by role, CSRF, sessions, languages, /docs."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import Error as PlaywrightError
from console_harness import PASSWORD, nav_labels, shot, sign_in

from api.errors import DomainError
from api.service import users

NAV_ZH = {
    "reports:read": "概览",
    "customers:read": "客户",
    "actions:read": "工作清单",
    "referrals:read": "审批",
    "policies:read": "策略",
    "audit:verify": "决策记录",
    "sweeps:read": "批处理与任务",
}


def _book(api) -> dict:
    """Three customers (Chinese names) with overdue invoices: each invoice event is a decision and
    opens collection actions."""
    ids = {}
    for key, name, size in (
        ("big", "上海宏达机械制造有限公司", "large"),
        ("mid", "杭州云帆信息服务有限公司", "medium"),
        ("small", "深圳小微贸易商行", "small"),
    ):
        cid = api.customer(f"C-{key}-{api.backend}", name=name, size=size, collector="li.collector")
        api.invoice(cid, "120000.00" if key == "big" else "8000.00", due=-40 if key == "big" else -1, issued=-70)
        api.invoice(cid, "3000.00", due=3, issued=-27)  # a payment reminder is due today
        ids[key] = cid
    r = api.post("/v1/sweeps", {"as_of": api.service.today().isoformat()}, role="controller")
    assert r.status_code == 201, r.text
    return ids


def _expected_nav(role: str) -> list[str]:
    from api.service.auth import PERMISSIONS

    return [label for perm, label in NAV_ZH.items() if role in PERMISSIONS[perm]]


def _csrf(page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


# ---------------------------------------------------------------------------------------- journeys
def test_collector_completes_an_action_from_the_worklist(console, page):
    api = console
    ids = _book(api)
    sign_in(page, api, "backoffice")
    assert nav_labels(page) == _expected_nav("backoffice") == ["概览", "客户", "工作清单", "批处理与任务"]
    page.click("header nav >> text=工作清单")
    page.wait_for_selector("#worklist")
    rows = page.locator("#worklist tbody tr[id^=action-]")
    assert rows.count() > 0
    shot(page, api.backend, "worklist")
    # most urgent first: the first row's stage is the highest on the list
    stages = [int(s) for s in page.locator("#worklist tbody tr[id^=action-] td:nth-child(5)").all_inner_texts()]
    assert stages == sorted(stages, reverse=True)
    row = rows.first
    action_id = int(row.get_attribute("id").split("-")[1])
    row.locator("select[name=outcome]").select_option("promised")
    row.locator("select[name=channel]").select_option("phone")
    row.locator("input[name=note]").fill("客户承诺周五付款")
    row.locator("form.complete button").click()
    done = page.locator(f"#action-{action_id} td.ok")
    done.wait_for()
    assert "客户承诺周五付款" in done.inner_text() and api.people["backoffice"] in done.inner_text()
    # the same service function as the API: the action is done, by the signed-in person
    listed = api.get("/v1/actions", role="backoffice", params={"status": "done"}).json()["actions"]
    mine = [a for a in listed if a["id"] == action_id]
    assert mine and mine[0]["outcome"] == "promised" and mine[0]["channel"] == "phone"
    assert mine[0]["completed_by"] == api.people["backoffice"] and mine[0]["customer_id"] in ids.values()
    # a page the role may not open is refused, and its navigation entry is not shown
    r = page.goto(api.base_url + "/console/policy")
    assert r.status == 403 and "E_FORBIDDEN" in page.content()


def test_controller_fixes_a_policy_error_at_its_line_publishes_and_sweeps(console, page):
    api = console
    _book(api)
    sign_in(page, api, "controller")
    assert nav_labels(page) == _expected_nav("controller") == list(NAV_ZH.values())
    page.click("header nav >> text=概览")
    page.wait_for_selector("#kpi-receivables")
    assert page.inner_text("#kpi-receivables") == "145,000.00"  # 120000 + 2 × 8000 + 3 × 3000
    assert page.get_attribute("#figures-source", "data-source") == "snapshot"  # the sweep's, not a pass
    assert page.locator(".chart svg").count() == 1
    # one pass over the book gives the same DSO as the API's report
    dso = api.get("/v1/reports/dso", role="controller", params={"as_of": "2026-12-15", "days": 90}).json()
    assert dso["dso_days"] and page.inner_text("#kpi-dso") == dso["dso_days"]
    shot(page, api.backend, "overview")
    page.click("header nav >> text=策略")
    page.wait_for_selector("#policy-text")
    text = page.input_value("#policy-text")
    before = api.get("/v1/policies/active", role="controller").json()
    lines = text.split("\n")
    target = next(i for i, ln in enumerate(lines) if "field: reputation" in ln)
    broken = lines.copy()
    broken[target] = broken[target].replace("field: reputation", "field: reputaton")
    page.fill("#policy-text", "\n".join(broken))
    page.click("#check")
    page.wait_for_selector("#policy-errors")
    error = page.locator("#policy-errors li").first
    assert error.locator("a.goto").get_attribute("data-line") == str(target + 1)
    assert "E_UNKNOWN_FIELD" in error.inner_text() and f"第 {target + 1} 行" in error.inner_text()
    assert page.locator("#gutter .bad").all_inner_texts() == [str(target + 1)]  # marked in the gutter
    shot(page, api.backend, "policy-error")
    # publishing the broken draft is refused and changes nothing
    page.on("dialog", lambda d: d.accept())
    page.eval_on_selector("#policy-errors", "e => e.dataset.stale = '1'")  # the check's list, not the answer
    page.click("#publish")
    page.wait_for_selector("#policy-errors:not([data-stale])")  # the publish's answer swapped in
    assert api.get("/v1/policies/active", role="controller").json()["version"] == before["version"]
    fixed = lines.copy()
    name_line = next(i for i, ln in enumerate(lines) if ln.startswith("  description:"))
    fixed[name_line] = fixed[name_line].rstrip() + " (console)"
    page.fill("#policy-text", "\n".join(fixed))
    page.click("#check")
    page.wait_for_selector("#policy-ok")
    page.click("#run-tests")
    page.wait_for_selector("#policy-tests")
    assert re.search(r"(\d+) 个通过，0 个失败", page.inner_text("#policy-tests"))
    page.click("#simulate")
    page.wait_for_selector("#simulation")
    assert "3 个客户中有 0 个会变化" in page.inner_text("#simulation")
    page.click("#publish")
    page.wait_for_selector("#published")
    after = api.get("/v1/policies/active", role="controller").json()
    assert after["version"] != before["version"] and after["version"][:12] in page.inner_text("#published")
    assert after["activated_by"] == api.people["controller"] and after["text"] == "\n".join(fixed)
    # the sweep, started from the console, runs through the same job and names the person
    page.click("header nav >> text=批处理与任务")
    page.wait_for_selector("#sweeps")
    page.click("#start-sweep")
    page.wait_for_selector("#sweep-done")
    assert "3 个客户" in page.inner_text("#sweep-done")  # a second run of the day
    page.reload()
    assert f"console:{api.people['controller']}" in page.inner_text("#sweeps")
    shot(page, api.backend, "runs")
    sim = api.get("/v1/decisions", role="auditor", params={"kind": "simulation"}).json()["decisions"]
    assert [d["actor"] for d in sim] == [api.people["controller"]]


def test_auditor_replays_and_verifies_and_may_not_change_anything(console, page):
    api = console
    ids = _book(api)
    sign_in(page, api, "auditor")
    # auditors read the policy versions (read-only: no publish form)
    assert nav_labels(page) == _expected_nav("auditor") == ["概览", "审批", "策略", "决策记录"]
    page.click("header nav >> text=决策记录")
    page.wait_for_selector("#decisions")
    page.fill("input[name=customer]", ids["big"])
    page.click("#search")
    page.wait_for_url(re.compile(r"customer="))
    links = page.locator("#decisions tbody a")
    assert links.count() == 3  # two invoice events and the sweep
    shot(page, api.backend, "trail")
    links.first.click()
    page.wait_for_selector("#replay")
    assert "policy_version" not in page.inner_text("h1")
    page.click("#replay")
    page.wait_for_selector("#replay-identical")
    facts = page.inner_text("pre.json >> nth=0")
    assert '"name": "上海宏达机械制造有限公司"' in facts and "\\u" not in facts  # Chinese as written, not escaped
    shot(page, api.backend, "decision")
    page.click("header nav >> text=决策记录")
    page.wait_for_selector("#decisions")
    page.click("#verify")
    page.wait_for_selector("#verify-ok")
    assert re.search(r"共 (\d+) 条记录", page.inner_text("#verify-ok"))
    # posting with a valid CSRF token is still refused by role, and writes nothing
    before = api.counts()
    token = _csrf(page)
    for path in ("/console/sweeps", "/console/actions/1/complete", "/console/policy/publish"):
        r = page.request.post(api.base_url + path, form={"csrf_token": token, "outcome": "x", "text": "x"})
        assert r.status == 403, (path, r.status)
        assert "E_FORBIDDEN" in r.text()
    assert api.counts() == before


def test_sales_finds_a_customer_by_its_chinese_name_and_reads_the_decision(console, page):
    api = console
    ids = _book(api)
    sign_in(page, api, "sales")
    assert nav_labels(page) == _expected_nav("sales") == ["客户"]
    page.fill("#q", "宏达")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length === 1")
    assert page.inner_text("#customer-count").startswith("共 1 个客户")
    shot(page, api.backend, "customers")
    page.click(f"text={ids['big']}")
    page.wait_for_selector("#plain-decision")
    plain = page.inner_text("#plain-decision")
    assert "信用额度 500,000.00 CNY" in plain and "催收阶段" in plain
    assert page.locator("ol.reasons li").count() > 3
    assert page.locator(".timeline tbody tr").count() >= 4  # 2 invoices, 2 decisions, its actions
    assert page.locator("#statement").count() == 0  # statements are reports: not for sales
    shot(page, api.backend, "customer")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 820
    shot(page, api.backend, "customer-tablet")
    for path in ("/console/worklist", "/console/trail", "/console/overview"):
        assert page.goto(api.base_url + path).status == 403


def test_customer_list_filters_sorts_and_pages(console, page):
    api = console
    for k in range(57):
        api.customer(f"C-p{k:03d}-{api.backend}", name=f"客户{k:03d}", collector="A组" if k % 2 else "B组")
    sign_in(page, api, "controller")
    page.goto(api.base_url + "/console/customers?collector=A组&sort=name&dir=desc")
    assert page.inner_text("#customer-count").startswith("共 28 个客户")
    names = page.locator("#customer-rows tbody td:nth-child(2)").all_inner_texts()
    assert names[0] == "客户055" and names == sorted(names, reverse=True)
    page.goto(api.base_url + "/console/customers")
    assert page.inner_text("#customer-count").startswith("共 57 个客户")
    assert page.locator("#customer-rows tbody tr").count() == 50 and page.locator("#first-page").count() == 0
    page.click("#next-page")
    page.wait_for_selector("#first-page")
    assert page.locator("#customer-rows tbody tr").count() == 7 and page.locator("#next-page").count() == 0
    assert "cursor=" in page.url  # hx-push-url: the page can be linked
    r = page.goto(api.base_url + "/console/customers?tier=huge")
    assert r.status == 422 and "tier" in page.content()


def test_customer_list_filters_by_the_last_decisions_classification_and_hold(console, page):
    api = console
    ids = _book(api)  # decided by their events and the sweep: large / medium / small tier
    plant = api.customer(f"C-plant-{api.backend}", name="苏州精工机械厂", industry="manufacturing")
    api.invoice(plant, "180000.00", due=-10, issued=-40)  # manufacturing + large: a segment
    r = api.put(f"/v1/customers/{ids['small']}/hold", {"reason": "对账争议"}, role="controller")
    assert r.status_code in (200, 201), r.text
    sign_in(page, api, "controller")
    page.goto(api.base_url + "/console/customers")
    page.wait_for_selector("#customer-rows tbody a")

    def listed():
        return page.locator("#customer-rows tbody td:first-child a").all_inner_texts()

    with page.expect_response(lambda r: "tier=large" in r.url):
        page.select_option("select[name=tier]", "large")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length === 2")
    assert listed() == sorted([ids["big"], plant]) and "tier=large" in page.url
    assert page.locator("#customer-rows tbody td:nth-child(4)").all_inner_texts() == ["large", "large"]
    page.select_option("select[name=tier]", "")
    with page.expect_response(lambda r: "hold=yes" in r.url):
        page.select_option("select[name=hold]", "yes")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length === 1")
    assert listed() == [ids["small"]] and "停止赊销中" in page.inner_text("#customer-rows tbody")
    page.select_option("select[name=hold]", "no")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length === 3")
    assert listed() == sorted([ids["big"], ids["mid"], plant])
    page.select_option("select[name=hold]", "")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length >= 4")
    with page.expect_response(lambda r: "segment=segment.manufacturing_large" in r.url):
        page.select_option("select[name=segment]", "segment.manufacturing_large")
    page.wait_for_function("document.querySelectorAll('#customer-rows tbody a').length === 1")
    assert listed() == [plant]
    shot(page, api.backend, "customers-filtered")


# ---------------------------------------------------------------------------------------- security
def _signed_in_session(api, role="controller") -> tuple[requests.Session, str]:
    s = requests.Session()
    r = s.get(api.base_url + "/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = s.post(
        api.base_url + "/console/sign-in",
        data={"csrf_token": token, "name": api.people[role], "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status_code == 302
    page = s.get(api.base_url + "/console/runs")
    return s, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_csrf_a_post_without_the_token_is_refused_and_changes_nothing(console):
    api = console
    _book(api)
    s, token = _signed_in_session(api)
    before = api.counts()
    for data in ({"as_of": "2026-12-15"}, {"as_of": "2026-12-15", "csrf_token": "forged"}):
        r = s.post(api.base_url + "/console/sweeps", data=data)
        assert r.status_code == 400 and "E_CSRF" in r.text
    # without a session cookie at all (another site's form): refused as well
    r = requests.post(api.base_url + "/console/sweeps", data={"csrf_token": token})
    assert r.status_code == 400 and "E_CSRF" in r.text
    assert api.counts() == before
    r = s.post(api.base_url + "/console/sweeps", data={"as_of": "2026-12-15", "csrf_token": token})
    assert r.status_code == 200 and 'id="sweep-done"' in r.text
    assert api.counts()["sweep_runs"] == before["sweep_runs"] + 1


def test_session_cookie_flags_sign_out_and_idle_expiry(console):
    api = console
    s = requests.Session()
    r = s.get(api.base_url + "/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = s.post(
        api.base_url + "/console/sign-in",
        data={"csrf_token": token, "name": api.people["auditor"], "password": "wrong password!"},
        allow_redirects=False,
    )
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = s.post(
        api.base_url + "/console/sign-in",
        data={"csrf_token": token, "name": api.people["auditor"], "password": PASSWORD},
        allow_redirects=False,
    )
    cookie = r.headers["Set-Cookie"]
    assert "creditctl_console=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    assert s.get(api.base_url + "/console/trail").status_code == 200
    api.clock.now += 599  # used within the idle limit: still in
    assert s.get(api.base_url + "/console/trail", allow_redirects=False).status_code == 200
    api.clock.now += 601  # idle past CONSOLE_IDLE_SECONDS
    r = s.get(api.base_url + "/console/trail", allow_redirects=False)
    assert r.status_code == 302 and "/console/sign-in?expired=1" in r.headers["Location"]
    assert s.get(api.base_url + "/console/trail", allow_redirects=False).status_code == 302
    s2, token2 = _signed_in_session(api, "auditor")
    r = s2.post(api.base_url + "/console/sign-out", data={"csrf_token": token2}, allow_redirects=False)
    assert r.status_code == 302
    assert s2.get(api.base_url + "/console/trail", allow_redirects=False).status_code == 302


def test_session_cookie_is_secure_over_tls(console):
    client = console.app.test_client()
    r = client.get("/console/sign-in", base_url="https://console.example")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = client.post(
        "/console/sign-in",
        base_url="https://console.example",
        data={"csrf_token": token, "name": console.people["sales"], "password": PASSWORD},
    )
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]


def test_sign_in_with_an_api_key_and_revocation_ends_the_session(console, page):
    api = console
    page.goto(api.base_url + "/console/sign-in")
    page.fill("input[name=api_key]", api.keys["auditor"])
    page.click("#sign-in")
    page.wait_for_selector("span.who")
    assert page.inner_text("span.who").startswith("test-auditor") and nav_labels(page) == [
        "概览",
        "审批",
        "策略",
        "决策记录",
    ]
    from sqlalchemy import update

    from api.store.tables import ApiKey

    with api.service.tx() as s:
        s.execute(update(ApiKey).where(ApiKey.name == "test-auditor").values(revoked=True))
    try:
        page.goto(api.base_url + "/console/trail")
    except PlaywrightError as exc:  # chromium may abort the first navigation for the redirect it follows
        assert "ERR_ABORTED" in str(exc), exc
    page.wait_for_url("**/console/sign-in**")
    assert "/console/sign-in" in page.url


def test_language_is_chosen_per_user_and_formats_follow_it(console, page):
    api = console
    ids = _book(api)
    sign_in(page, api, "controller")
    page.goto(api.base_url + f"/console/customers/{ids['big']}?as_of=2026-12-15")
    assert "评估日" in page.content() and "2026年12月15日" in page.inner_text("main")
    page.click("button[value=en]")
    page.wait_for_selector("text=Current decision")
    assert nav_labels(page)[0] == "Overview" and "Dec 15, 2026" in page.inner_text("main")
    shot(page, api.backend, "customer-en")
    page.click("#sign-out")
    page.context.clear_cookies()  # the choice is the user's, not the browser's
    sign_in(page, api, "controller")
    assert nav_labels(page)[0] == "Overview"
    assert users.current(api.service, api.people["controller"])[1] == "en"


def test_api_docs_are_swagger_ui_fed_by_openapi_json(console, page):
    api = console
    page.goto(api.base_url + "/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 20
    assert "/v1/credit-checks" in page.inner_text("#swagger-ui")
    shot(page, api.backend, "docs")


def test_users_are_created_once_with_checked_fields(console):
    api = console
    try:
        users.create_user(api.service, api.people["sales"], "sales", PASSWORD)
    except DomainError as exc:
        assert exc.code == "E_USER_EXISTS"
    else:
        raise AssertionError("a second user of the same name was created")
    try:
        users.create_user(api.service, "bad name!", "chief", "short", authority="Team Lead")
    except DomainError as exc:
        assert exc.code == "E_INPUT_INVALID" and set(exc.errors) == {"name", "role", "password", "authority"}
    else:
        raise AssertionError("invalid fields were accepted")


def test_an_auditor_reads_the_policy_page_without_a_publish_form(console, page):
    sign_in(page, console, "auditor")
    page.click("header nav >> text=策略")
    page.wait_for_load_state()
    assert console.get("/v1/policies/active", role="auditor").json()["version"][:12] in page.content()
    assert (
        page.locator("#policy-text").input_value() == console.get("/v1/policies/active", role="auditor").json()["text"]
    )
    assert page.locator("#publish").count() == 0 and page.locator("#simulate").count() == 0


def test_a_chinese_user_reads_the_reasons_in_chinese(console, page):
    """Structured reasons (issue 8): the customer page and a recorded decision's page render the reasons in
    the user's locale (the browser's zh-CN here), the same rules as the English decision the API answers."""
    api = console
    ids = _book(api)
    sign_in(page, api, "controller")
    page.goto(api.base_url + f"/console/customers/{ids['big']}")
    page.wait_for_selector("ol.reasons li")
    texts = page.locator("ol.reasons li").all_inner_texts()
    assert any("由信用档案设定（人工评估）" in t for t in texts), texts
    assert any("信誉高（评分 85）：额度 500,000.00" in t for t in texts), texts
    decision_id = api.get("/v1/decisions", role="auditor", params={"customer": ids["big"], "kind": "sweep"}).json()[
        "decisions"
    ][0]["id"]
    english = api.get(f"/v1/decisions/{decision_id}", role="auditor").json()["decision"]["reasons"]
    page.goto(api.base_url + f"/console/decisions/{decision_id}")
    items = page.locator("ol.reasons li").all_inner_texts()
    assert [t.split(" ", 1)[0] for t in items] == [r["rule"] for r in english]
    assert any("信用评分 85" in t for t in items) and not any("credit score 85" in t for t in items), items

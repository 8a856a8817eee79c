"""GET /v1/customers (issue 14): the last recorded decision's classification kept by both decision writers
(the request path's decide and the sweep's batch), filters on it, sort, keyset cursor, the indexed name
search answering exactly as the plain scan, and bad filters refused naming the field."""
from __future__ import annotations

import pytest
from api_harness import day, uid
from sqlalchemy import text

from api.service import customer_list


def _ids(api, role="sales", **params):
    r = api.get("/v1/customers", role=role, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["customers"]]


def _book(api):
    """Four customers of one collector: large tier 40 days overdue (manufacturing), small tier current
    (services), a low-reputation one 5 days overdue, and one never decided."""
    team = uid("team")
    big = api.customer(f"{team}-a", name="上海宏达机械制造有限公司", industry="manufacturing", collector=team)
    api.invoice(big, "150000.00", due=-40, issued=-70)
    small = api.customer(f"{team}-b", name="深圳小微服务商行", industry="services", collector=team)
    api.invoice(small, "800.00", due=10, issued=-5)
    low = api.customer(f"{team}-c", name="Acme Trading Ltd", credit_score=40, collector=team)
    api.invoice(low, "20000.00", due=-5, issued=-35)
    fresh = api.customer(f"{team}-d", name="杭州新客户有限公司", collector=team)
    return team, big, small, low, fresh


def test_filters_on_the_last_decision_written_by_the_request_path(api):
    team, big, small, low, fresh = _book(api)
    listed = {c["id"]: c for c in api.get("/v1/customers", params={"collector": team}).json()["customers"]}
    assert sorted(listed) == [big, small, low, fresh]
    assert listed[fresh]["last_decision"] is None and listed[fresh]["on_hold"] is False
    last = listed[big]["last_decision"]
    assert (last["amount_tier"], last["aging_bucket"], last["reputation"], last["outstanding"]) == \
        ("large", "medium", "high", "150000.00")
    assert last["segments"] == ["segment.manufacturing_large"] and last["as_of"] == day(0)
    assert _ids(api, collector=team, tier="large") == [big]
    assert _ids(api, collector=team, tier="small") == [small]
    assert _ids(api, collector=team, bucket="current") == [small]
    assert _ids(api, collector=team, reputation="low") == [low]
    assert _ids(api, collector=team, segment="segment.services") == [small]
    assert _ids(api, collector=team, segment="segment.manufacturing_large", tier="large") == [big]
    assert _ids(api, collector=team, stage=1) == [low] or _ids(api, collector=team, stage=2) == [big]
    assert set(_ids(api, collector=team, stage=0)) >= {small, fresh}
    r = api.put(f"/v1/customers/{low}/hold", {"reason": "legal dispute"}, role="controller")
    assert r.status_code in (200, 201), r.text
    assert _ids(api, collector=team, hold="yes") == [low]
    assert _ids(api, collector=team, hold="no") == [big, small, fresh]
    assert api.get("/v1/customers", params={"collector": team, "hold": "yes"}).json()["customers"][0]["on_hold"]


def test_the_sweeps_batch_writer_keeps_the_same_summary(api):
    team, big, small, low, fresh = _book(api)
    before = {c["id"]: c["last_decision"] for c in api.get("/v1/customers", params={"collector": team}).json()["customers"]}
    r = api.post("/v1/sweeps", {"as_of": day(20)}, role="controller")
    assert r.status_code == 201, r.text
    after = {c["id"]: c["last_decision"] for c in api.get("/v1/customers", params={"collector": team}).json()["customers"]}
    assert after[fresh] is not None and after[fresh]["as_of"] == day(20)    # first decided by the sweep
    assert after[big]["as_of"] == day(20) and after[big]["segments"] == before[big]["segments"]
    assert after[small]["aging_bucket"] == "short" and before[small]["aging_bucket"] == "current"   # due day 10
    assert _ids(api, collector=team, bucket="short") == [small, low]
    assert _ids(api, collector=team, segment="segment.services") == [small]
    # an earlier day's decision after the sweep does not take the place of the later one
    api.post(f"/v1/customers/{small}/evaluate", {"as_of": day(0)}, role="controller")
    assert api.get("/v1/customers", params={"q": small}).json()["customers"][0]["last_decision"]["as_of"] == day(20)
    assert _ids(api, collector=team, segment="segment.services") == [small]


def test_sorts_page_with_a_keyset_cursor_under_filters(api):
    team = uid("sort")
    ids = [api.customer(f"{team}-{n:02d}", name=f"客户{(n * 7) % 11:02d}", collector=team) for n in range(11)]
    for n, cid in enumerate(ids[:6]):
        api.invoice(cid, f"{(n % 3 + 1) * 1000}.00", due=5)
    for sort, direction in (("name", "desc"), ("outstanding", "desc"), ("stage", "asc"), ("id", "desc")):
        whole = api.get("/v1/customers", params={"collector": team, "sort": sort, "dir": direction}).json()
        rows = whole["customers"]
        key = {"name": lambda c: c["name"], "id": lambda c: c["id"],
               "outstanding": lambda c: float(c["last_decision"]["outstanding"]) if c["last_decision"] else 0,
               "stage": lambda c: c["last_decision"]["stage"] if c["last_decision"] else 0}[sort]
        expected = sorted(rows, key=lambda c: (key(c), c["id"]), reverse=direction == "desc")
        assert [c["id"] for c in rows] == [c["id"] for c in expected] and len(rows) == 11, sort
        pages, cursor = [], None
        while True:
            params = {"collector": team, "sort": sort, "dir": direction, "limit": 3, **({"cursor": cursor} if cursor else {})}
            r = api.get("/v1/customers", role="backoffice", params=params)
            assert r.status_code == 200, r.text
            pages += [c["id"] for c in r.json()["customers"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == [c["id"] for c in rows], sort
    # the cursor of one sort is refused for another (no silently wrong page)
    cur = api.get("/v1/customers", params={"collector": team, "sort": "name", "limit": 2}).json()["next_cursor"]
    r = api.get("/v1/customers", params={"collector": team, "sort": "outstanding", "cursor": cur})
    assert r.status_code == 422 and "cursor" in r.json()["errors"], r.text


TERMS = ["宏", "宏达", "宏达机", "宏达机械", "有限公司", "acme", "ACME trad", "me T", "Ltd", "a", "%", "_", '"', "x\"y",
         "C-", "深圳小微服务商行", "不存在的名字"]


def test_the_indexed_search_answers_exactly_as_the_scan(api):
    team, big, small, low, fresh = _book(api)
    api.customer(f"{team}-e", name='Odd "quoted" 100%_name', collector=team)
    svc = api.service
    with svc.read_tx() as s:
        dialect = s.get_bind().dialect.name
    rare = customer_list.RARE
    try:
        for customer_list.RARE in (rare, 1):      # SQLite: a rare term's trigram hits, and a common term's scan
            for term in TERMS + [team[:8], big, f"{team}-"]:
                f = {"q": term, "collector": team, "sort": "id", "desc": False}
                indexed = [c.id for c, _ in customer_list.search(svc, f, limit=200)["rows"]]
                scanned = [c.id for c, _ in customer_list.search(svc, f, limit=200, indexed=False)["rows"]]
                assert indexed == scanned, term
                assert _ids(api, q=term, collector=team) == indexed, term
    finally:
        customer_list.RARE = rare
    assert _ids(api, q="宏达机", collector=team) == [big]
    assert _ids(api, q="acme trad", collector=team) == [low]
    assert _ids(api, q="100%_", collector=team) == [f"{team}-e"]
    assert _ids(api, q='"quoted"', collector=team) == [f"{team}-e"]
    # the index is really there and used
    with svc.read_tx() as s:
        if dialect == "sqlite":
            plan = " ".join(str(r) for r in s.execute(text(
                "EXPLAIN QUERY PLAN SELECT rowid FROM customer_search WHERE customer_search MATCH '\"宏达机\"'")))
            assert "VIRTUAL TABLE INDEX" in plan, plan
        else:
            got = s.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_customers_name_trgm'")).scalar()
            assert got and "gin_trgm_ops" in got


def test_a_renamed_customer_is_found_by_its_new_name_only(api):
    team = uid("ren")
    cid = api.customer(f"{team}-a", name="北京旧名称有限公司", collector=team)
    assert _ids(api, q="旧名称", collector=team) == [cid]
    body = {"name": "北京新名称有限公司", "type": "enterprise", "industry": "trading", "region": "local",
            "size": "large", "since": "2015-01-01", "credit_score": 85, "collector": team}
    assert api.put(f"/v1/customers/{cid}", body, role="controller").status_code == 200
    assert _ids(api, q="旧名称", collector=team) == [] and _ids(api, q="新名称", collector=team) == [cid]


@pytest.mark.parametrize("param,value", [("tier", "huge"), ("bucket", "ancient"), ("reputation", "stellar"),
                                         ("stage", "x"), ("stage", "100"), ("hold", "maybe"), ("sort", "score"),
                                         ("dir", "up"), ("segment", "s" * 129), ("collector", "c" * 129)])
def test_bad_filters_are_refused_naming_the_field(api, param, value):
    before = api.counts()
    r = api.get("/v1/customers", params={param: value})
    assert r.status_code == 422 and r.json()["code"] == "E_INPUT_INVALID", r.text
    assert param in r.json()["errors"], r.text
    assert api.counts() == before


def test_a_garbled_cursor_is_refused(api):
    r = api.get("/v1/customers", params={"sort": "name", "cursor": "not-a-cursor!"})
    assert r.status_code == 422 and "cursor" in r.json()["errors"], r.text


# ------------------------------------------------------------------ the window plan (PostgreSQL's "auto")
CITIES, MARKS, TRADES = ("上海", "北京", "深圳", "杭州"), ("宏达", "永兴", "华信"), ("机械", "贸易", "电子")


def _window_book(api):
    """42 customers of one collector, named as the bench's book (城市 + 字号 + 行业 + 有限公司, 1 in 7 a 商行),
    a few Latin names in mixed case, some with an overdue invoice (outstanding and stage differ); and three of
    another collector whose names hold every term (a plan that lost the collector filter would count them)."""
    team = uid("win")
    for n in range(3):
        api.customer(f"{team}-z{n}", name="上海宏达机械有限公司商行深圳华信电子 ärzte Ltd", collector=f"{team}-other")
    ids = []
    for n in range(42):
        name = CITIES[n % 4] + MARKS[(n // 4) % 3] + TRADES[(n // 12) % 3] + ("商行" if n % 7 == 3 else "有限公司")
        if n % 10 == 9:
            name = ("ÄRZTE Trading LTD " if n % 20 == 9 else "ärzte trading Ltd ") + name
        ids.append(api.customer(f"{team}-{(n * 17) % 42:02d}", name=name, collector=team))
    for n, cid in enumerate(ids[::6]):
        api.invoice(cid, f"{(n % 3 + 1) * 1500}.00", due=-(n % 3) * 20, issued=-60)
    return team


WINDOW_TERMS = ["有限公司", "商行", "上海", "宏达机械", "深圳华信电子", "宏", "ltd", "ärzte", "不存在的名字"]


def _pages(svc, f: dict, limit: int, **how) -> list:
    """Every page of the list (cursor after cursor): [(ids, next_cursor, total, capped), …]."""
    pages, after = [], None
    while True:
        got = customer_list.search(svc, {**f, "after": after}, limit=limit, count=True, **how)
        pages.append(([c.id for c, _ in got["rows"]], got["next_cursor"], got["total"], got["total_capped"]))
        if got["next_cursor"] is None:
            return pages
        after = customer_list.decode_cursor(f["sort"], got["next_cursor"])
        assert len(pages) < 100


def test_the_window_plan_answers_exactly_as_the_one_query(api):
    """Search terms common, rare, Chinese, of 1 character, cased, none and an id prefix; sorts both ways; 5
    rows a page to the end: the same rows, order, cursors and count (exact, and capped) whichever plan (the
    window first, with windows that end the list, that hold a page or do not; the one query; the plain
    scan), SQLite and PostgreSQL."""
    team = _window_book(api)
    svc = api.service
    window, cap, walk = customer_list.WINDOW, customer_list.COUNT_CAP, customer_list.COUNT_WALK
    # "auto" is the window on PostgreSQL (and the one query on SQLite, as "direct")
    plans = ("auto", "window") if api.backend == "postgresql" else ("window",)
    pages = {}
    try:
        customer_list.COUNT_CAP = 20                  # the common terms' counts are capped, the others exact
        for term in WINDOW_TERMS + [team[:7]]:
            for sort, desc in (("id", False), ("id", True), ("name", True), ("outstanding", True)):
                f = {"q": term, "collector": team, "sort": sort, "desc": desc}
                scan = pages[term, sort, desc] = _pages(svc, f, 5, indexed=False, plan="direct")
                assert _pages(svc, f, 5, plan="direct") == scan, (term, sort, desc)
                assert _pages(svc, f, 5) == scan, (term, sort, desc)
                # windows (and count walks) that end the list, that hold a page (the cap) or do not
                for customer_list.WINDOW, customer_list.COUNT_WALK in ((window, walk), (7, 25), (1, 1)):
                    for plan in plans:
                        assert _pages(svc, f, 5, plan=plan) == scan, (term, sort, desc, plan, customer_list.WINDOW)
                customer_list.WINDOW, customer_list.COUNT_WALK = window, walk
    finally:
        customer_list.WINDOW, customer_list.COUNT_CAP, customer_list.COUNT_WALK = window, cap, walk
    assert len(pages["有限公司", "name", True]) == 8 and pages["有限公司", "id", False][0][2:] == (20, True)  # 36
    assert pages["宏达机械", "outstanding", True][0][2:] == (8, False) and len(pages["宏达机械", "id", True]) == 2
    assert len(pages[team[:7], "id", True]) == 9 and pages["不存在的名字", "id", True] == [([], None, 0, False)]
    # the answers themselves (the scan above is not trusted blindly)
    f = {"collector": team, "sort": "id", "desc": False}
    every = [c for c, _ in customer_list.search(svc, f, limit=200)["rows"]]
    assert len(every) == 42
    for term, expected in (("有限公司", [c.id for c in every if "有限公司" in c.name]),
                           ("深圳华信电子", [c.id for c in every if "深圳华信电子" in c.name]),
                           ("ärzte", [c.id for c in every if "rzte" in c.name.lower()])):
        got = [c.id for c, _ in customer_list.search(svc, {**f, "q": term}, limit=200)["rows"]]
        if term == "ärzte" and api.backend == "sqlite":
            expected = [c.id for c in every if "ärzte" in c.name]     # SQLite's LIKE folds ASCII letters only
        assert got == expected and got, term
    assert len([c for c in every if "深圳华信电子" in c.name]) == 1


def test_the_window_holds_a_common_terms_page_and_passes_a_rare_one_on(api):
    """The window is what answers a common term (no trigram index collecting every match), and a window
    holding too few matches before the list ends gives way to the one query: pinned on the function itself."""
    team = _window_book(api)
    svc = api.service
    with svc.read_tx() as s:
        dialect = s.get_bind().dialect.name
        base = [customer_list.Customer.collector == team]
        window = customer_list.WINDOW
        try:
            customer_list.WINDOW = 10
            common, named = customer_list._window_page(s, "有限公司", dialect, True, base, "id", False, 5)
            assert len(common) == 5 and all("有限公司" in c.name for c in common) and named == 5
            assert customer_list._window_page(s, "深圳华信电子", dialect, True, base, "id", False, 5) == (None, 0)
            ids, named = customer_list._window_page(s, team[:7], dialect, True, base, "id", False, 5)
            assert len(ids) == 5 and named == 0          # dense by id prefix, not by name: no count walk
            customer_list.WINDOW = 100                  # the window is the whole list: its answer is complete
            rare, named = customer_list._window_page(s, "深圳华信电子", dialect, True, base, "id", False, 5)
            assert len(rare) == 1 and "深圳华信电子" in rare[0].name and named == 1
        finally:
            customer_list.WINDOW = window
    # PostgreSQL's search is LIKE (no lower() of each name) exactly when no character of the term has a case
    assert [customer_list._uncased(t) for t in ("有限公司", "宏达 机械（上海）", "100%_-", "ｱｲｳ", "ltd", "Ä", "ß", "ⓐ",
                                                 "ǅ", "上海Ltd")] == [True] * 4 + [False] * 6


def test_the_filters_choices_walk_the_index_and_answer_as_distinct(api):
    """The console's collector and segment choices (api/reports/console.distinct_values: one index probe a
    value) are SELECT DISTINCT's: sorted, NULL left out, Chinese too, cut at the limit."""
    from sqlalchemy import select

    from api.reports import console
    from api.store.tables import Customer, CustomerSegment
    team = uid("dv")
    for n, collector in enumerate([f"{team}-张三", f"{team}-a", f"{team}-a", None, f"{team}-B", f"{team}-李四"]):
        api.customer(f"{team}-{n}", **({"collector": collector} if collector else {}))
    for n, industry in ((6, "manufacturing"), (7, "services")):      # decided: segments
        api.invoice(api.customer(f"{team}-{n}", industry=industry), "150000.00", due=-40, issued=-70)
    with api.service.read_tx() as s:
        for col in (Customer.collector, CustomerSegment.segment):
            every = list(s.execute(select(col).where(col.is_not(None)).distinct().order_by(col)).scalars())
            assert console.distinct_values(s, col, 10_000) == every and len(every) >= 2
            assert console.distinct_values(s, col, 2) == every[:2]
        mine = [c for c in console.distinct_values(s, Customer.collector, 10_000) if c.startswith(team)]
        assert sorted(mine) == mine and len(mine) == 4 and f"{team}-张三" in mine

"""The HTTP API test harness: create_app on a real database, one API key per role, a real
threaded HTTP server (werkzeug make_server on 127.0.0.1, port 0) and requests for the calls."""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import threading
import uuid

import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from api.http.app import create_app
from api.service.auth import ROLES, create_key
from api.store.tables import Base

import response_check

ROOT = pathlib.Path(__file__).resolve().parents[2]
POLICY_FILE = str(ROOT / "policies.yaml")


NOW = dt.datetime(2026, 12, 15, 10, 0, 0)
TODAY = NOW.date()


def fixed_clock() -> dt.datetime:
    return NOW


def day(offset: int) -> str:
    """ISO date `offset` days from TODAY."""
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


SERVER_ERRORS: list[str] = []  # every 5xx any test server answered, in order

# the werkzeug dev server logs every request at INFO; keep the output readable
logging.getLogger("werkzeug").setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------- the harness
class Api:
    """create_app on a database, API keys per role, a threaded HTTP server on 127.0.0.1."""

    def __init__(self, backend_name: str, database_url: str, clock=fixed_clock, config: dict | None = None):
        self.backend = backend_name
        self.database_url = database_url
        # no checkpoint log unless a test asks for one: never the working directory's var/checkpoints.jsonl
        self.app = create_app(
            {
                "DATABASE_URL": database_url,
                "POLICY_FILE": POLICY_FILE,
                "CLOCK": clock,
                "AUDIT_CHECKPOINTS": None,
                **(config or {}),
            }
        )
        self.service = self.app.extensions["creditctl"]
        self.engine = self.app.extensions["creditctl.engine"]

        @self.app.after_request
        def _record_5xx(response):
            from flask import request

            if response.status_code >= 500:
                SERVER_ERRORS.append(
                    f"{request.method} {request.full_path} → {response.status_code}: "
                    f"{response.get_data(as_text=True)[:500]}"
                )
            if not response.is_streamed:
                response_check.check(request, response)
            return response

        self.keys: dict[str, str] = {}
        self.key_names: dict[str, str] = {}
        with self.service.tx() as s:
            for role in ROLES:
                self.key_names[role] = f"test-{role}"
                # controller and admin at the top of the policy's authority matrix: releases are theirs
                self.keys[role] = create_key(
                    s, f"test-{role}", role, clock(), authority="cfo" if role in ("controller", "admin") else None
                )
            self.key_names["sales2"] = "test-sales2"  # a second salesperson
            self.keys["sales2"] = create_key(s, "test-sales2", "sales", clock())
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"api-{backend_name}", daemon=True
        )
        self._thread.start()
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()
        self.server.shutdown()
        self._thread.join(10)
        self.server.server_close()
        self.engine.dispose()

    # -- HTTP
    def headers(self, role: str | None) -> dict:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def request(
        self, method: str, path: str, role: str | None = "admin", *, headers=None, session=None, **kwargs
    ) -> requests.Response:
        h = dict(self.headers(role))
        h.update(headers or {})
        kwargs.setdefault("timeout", 60)
        if session is None and threading.current_thread() is not threading.main_thread():
            with requests.Session() as s:  # requests.Session is not shared across threads
                return s.request(method, self.base_url + path, headers=h, **kwargs)
        return (session or self.http).request(method, self.base_url + path, headers=h, **kwargs)

    def get(self, path, role="admin", **kw):
        return self.request("GET", path, role, **kw)

    def post(self, path, json=None, role="admin", **kw):
        return self.request("POST", path, role, json=json, **kw)

    def put(self, path, json=None, role="admin", **kw):
        return self.request("PUT", path, role, json=json, **kw)

    def delete(self, path, role="admin", **kw):
        return self.request("DELETE", path, role, **kw)

    # -- database
    def counts(self) -> dict[str, int]:
        """Row count of every table (what "nothing was written" is checked against)."""
        with self.engine.connect() as conn:
            out = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables
            }
            conn.rollback()
        return out

    # -- builders (through the API, as a client would)
    def customer(self, cid: str | None = None, **overrides) -> str:
        """An established, manually scored (85 → high reputation, limit 500000) customer."""
        cid = cid or uid("C")
        body = {
            "name": "测试客户 test customer",
            "type": "enterprise",
            "industry": "trading",
            "region": "local",
            "size": "large",
            "since": "2015-01-01",
            "credit_score": 85,
        }
        body.update(overrides)
        # a manual score is a decision field: a controller's (back office opens files without one)
        r = self.put(f"/v1/customers/{cid}", body, role="controller", params={"reason": "test file"})
        assert r.status_code == 201, r.text
        return cid

    def event(
        self,
        customer_id: str,
        type_: str,
        data: dict,
        *,
        event_id: str | None = None,
        as_of=None,
        role="backoffice",
        expect: int | None = 201,
    ) -> requests.Response:
        body = {"event_id": event_id or uid("ev"), "type": type_, "customer_id": customer_id, "data": data}
        if as_of:
            body["as_of"] = as_of
        r = self.post("/v1/events", body, role=role)
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

    def invoice(
        self,
        customer_id: str,
        amount: str,
        *,
        due: int,
        issued: int | None = None,
        invoice_id: str | None = None,
        **extra,
    ) -> str:
        invoice_id = invoice_id or uid("INV")
        data = {
            "id": invoice_id,
            "amount": amount,
            "currency": "CNY",
            "issued_on": day(issued if issued is not None else due - 30),
            "due_on": day(due),
            **extra,
        }
        self.event(customer_id, "invoice_issued", data)
        return invoice_id

    def credit_check(
        self, customer_id: str, amount: str, *, order_id: str | None = None, reserve=False, role="sales", **extra
    ) -> requests.Response:
        body = {
            "customer_id": customer_id,
            "order_id": order_id or uid("O"),
            "amount": amount,
            "currency": "CNY",
            "reserve": reserve,
            **extra,
        }
        return self.post("/v1/credit-checks", body, role=role)

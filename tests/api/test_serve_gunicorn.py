"""`creditctl serve` as it runs in production: gunicorn with 2 workers in a subprocess on a free port,
a temporary SQLite database and a temporary policy file.

- A SIGHUP with a broken policy file keeps the service up on the last good version, logs the errors
  (file:line) at ERROR once, and /healthz and /metrics report the failed reload; the fixed file and
  another SIGHUP serve the new version. A routine SIGHUP logs no [ERROR].
- A start with a broken file while a version is stored starts on the stored active version, loudly.
- /metrics sums every worker's counters (prometheus_client multiprocess mode).
- One access-log line per request at the default level.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import ROOT

HANG_GUARD = 90  # seconds: a server that never comes up fails the test instead of hanging it
ACCESS = re.compile(
    r"^\[[^]]+\] \[(\d+)\] \[INFO\] creditctl\.access: (\w+) (\S+) (\d{3}) [\d.]+ms "
    r"request_id=(\S+) key=(\S+) role=(\S+)$",
    re.M,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def creditctl(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kw,
    )


class Served:
    """One `creditctl serve` subprocess; stderr (gunicorn's and creditctl's log) goes to a file."""

    def __init__(self, tmp, db_url: str, policy, workers: int = 2):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(self.port),
                "--database-url",
                db_url,
                "--policy",
                str(policy),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.until(lambda: len(self.workers()) == workers and self.healthz() is not None, "the service is up")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def until(self, ok, what: str):
        deadline = time.monotonic() + HANG_GUARD
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited ({self.proc.returncode}) waiting for {what}:\n{self.log()}"
            value = ok()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"not seen within the hang guard: {what}\n{self.log()[-3000:]}")

    def workers(self) -> set[int]:
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children", encoding="ascii") as fh:
                return {int(p) for p in fh.read().split()}
        except FileNotFoundError:
            return set()

    def request(self, method: str, path: str, key: str | None = None, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def healthz(self) -> dict | None:
        try:
            status, text = self.request("GET", "/healthz")
        except OSError:
            return None
        return json.loads(text) if status == 200 else None

    def metrics(self) -> dict:
        status, text = self.request("GET", "/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def hup(self) -> None:
        """SIGHUP to the gunicorn master; returns once every old worker is replaced and one answers."""
        old = self.workers()
        self.proc.send_signal(signal.SIGHUP)
        self.until(
            lambda: (lambda now: len(now) == len(old) and not now & old)(self.workers()) and self.healthz() is not None,
            "the workers replaced after SIGHUP",
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=HANG_GUARD)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.log()


@pytest.fixture
def setup(tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text((ROOT / "policies.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")  # the documents' templates sit beside the policy
    db_url = f"sqlite:///{tmp_path / 'creditctl.sqlite3'}"
    # the key's command migrates the database and publishes the file: a good version is stored from here on
    p = creditctl("keys", "create", "ops", "--role", "controller", "--database-url", db_url, "--policy", policy)
    assert p.returncode == 0, p.stderr
    return tmp_path, db_url, policy, p.stdout.strip()


def _break(policy) -> str:
    text = policy.read_text(encoding="utf-8")
    broken = text.replace("  currency: CNY\n", "  currency: CNY\n  curency: CNY\n", 1)
    assert broken != text
    policy.write_text(broken, encoding="utf-8")
    return text


def _line_of(policy, needle: str) -> int:
    return next(n for n, line in enumerate(policy.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def _errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "[ERROR]" in line or "[CRITICAL]" in line]


def test_sighup_with_a_broken_policy_keeps_serving_the_last_good_version(setup):
    tmp, db_url, policy, key = setup
    served = Served(tmp, db_url, policy)
    try:
        good = served.healthz()
        v1 = good["policy_version"]
        assert good["policy_file"]["valid"] is True and good["policy_file"]["version"] == v1

        served.hup()  # a routine reload: nothing to say
        assert _errors(served.log()) == []

        good_text = _break(policy)
        line = _line_of(policy, "curency:")
        served.hup()
        health = served.healthz()
        assert health["status"] == "ok" and health["policy_version"] == v1
        failed = health["policy_file"]
        assert failed["valid"] is False and failed["serving_version"] == v1
        assert (failed["file"], failed["code"], failed["line"]) == (str(policy), "E_UNKNOWN_KEY", line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", failed["at"])
        for _ in range(4):  # every worker serves the old version
            status, body = served.request("GET", "/v1/policies/active", key)
            assert status == 200 and json.loads(body)["version"] == v1
        m = served.metrics()
        assert m[("creditctl_policy_reload_failures_total", ())] == 1
        assert m[("creditctl_policy_file_valid", ())] == 0
        errors = _errors(served.log())
        # once, by the first worker to boot, however many workers there are
        assert [e for e in errors if f"{policy}:{line}:3: E_UNKNOWN_KEY" in e] and len(
            [e for e in errors if "E_UNKNOWN_KEY" in e]
        ) == 1, errors
        assert len(errors) == 2 and "still serving the stored active version " + v1[:12] in errors[1], errors

        policy.write_text(good_text.replace("  name: default", "  name: default-2", 1), encoding="utf-8")
        served.hup()
        health = served.healthz()
        v2 = health["policy_version"]
        assert v2 != v1 and health["policy_file"]["valid"] is True and health["policy_file"]["version"] == v2
        status, body = served.request("GET", "/v1/policies/active", key)
        assert status == 200 and json.loads(body)["version"] == v2
        m = served.metrics()
        assert m[("creditctl_policy_file_valid", ())] == 1
        assert m[("creditctl_policy_reload_failures_total", ())] == 1  # the count of failures so far
    finally:
        log = served.stop()
    assert "Traceback" not in log, log
    assert len(_errors(log)) == 2, _errors(log)  # the broken reload's, nothing from the routine ones


def test_start_with_a_broken_policy_serves_the_stored_version_loudly(setup):
    tmp, db_url, policy, key = setup
    p = creditctl("policy", "check", policy)
    stored = re.search(r"version (\w+)", p.stdout).group(1)
    _break(policy)
    served = Served(tmp, db_url, policy)
    try:
        health = served.healthz()
        assert health["policy_version"].startswith(stored)
        assert health["policy_file"]["valid"] is False and health["policy_file"]["code"] == "E_UNKNOWN_KEY"
        status, body = served.request("GET", "/v1/policies/active", key)
        assert status == 200 and json.loads(body)["version"].startswith(stored)
        m = served.metrics()
        assert m[("creditctl_policy_file_valid", ())] == 0 and m[("creditctl_policy_reload_failures_total", ())] == 1
    finally:
        log = served.stop()
    errors = _errors(log)
    assert len(errors) == 2 and "E_UNKNOWN_KEY" in errors[0] and "still serving" in errors[1], log
    assert "Traceback" not in log, log


def test_start_with_a_broken_policy_and_nothing_stored_exits_2(tmp_path):
    policy = tmp_path / "policies.yaml"
    policy.write_text((ROOT / "policies.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    _break(policy)
    p = creditctl(
        "serve", "--port", _free_port(), "--database-url", f"sqlite:///{tmp_path / 'x.sqlite3'}", "--policy", policy
    )
    assert p.returncode == 2
    assert "E_UNKNOWN_KEY" in p.stderr and "nothing to serve" in p.stderr and "Traceback" not in p.stderr


def test_metrics_sum_every_worker_and_each_request_is_logged(setup):
    tmp, db_url, policy, key = setup
    served = Served(tmp, db_url, policy)
    try:
        before = served.metrics().get(
            ("creditctl_http_requests_total", (("method", "GET"), ("route", "/v1/policies/active"), ("status", "200"))),
            0,
        )
        sent = 0
        # until both workers have answered some (the kernel picks the worker; each request is a new connection)
        while sent < 400:
            assert served.request("GET", "/v1/policies/active", key)[0] == 200
            sent += 1
            pids = {m.group(1) for m in ACCESS.finditer(served.log()) if m.group(3) == "/v1/policies/active"}
            if sent >= 10 and len(pids) == 2:
                break
        assert len(pids) == 2, "one worker answered every request"
        for _ in range(3):  # whichever worker answers the scrape, it sees both workers' counts
            after = served.metrics()
            key_ = (
                "creditctl_http_requests_total",
                (("method", "GET"), ("route", "/v1/policies/active"), ("status", "200")),
            )
            assert after[key_] - before == sent
        assert served.request("GET", "/v1/audit/verify", "not-a-key")[0] == 401
    finally:
        log = served.stop()
    lines = [m.groups() for m in ACCESS.finditer(log)]
    ours = [g for g in lines if g[2] == "/v1/policies/active"]
    assert len(ours) == sent and all(
        g[1:4] == ("GET", "/v1/policies/active", "200") and g[5:] == ("ops", "controller") for g in ours
    )
    assert len({g[4] for g in ours}) == sent  # a request id each
    assert any(g[1:4] == ("GET", "/v1/audit/verify", "401") and g[5:] == ("-", "-") for g in lines)


def _raw(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no HTTP client would send these) and read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_what_gunicorn_refuses_answers_the_json_error_shape(setup):
    """A request line or header too long, or a line that isn't HTTP, is refused by gunicorn before the app
    sees it: the answer is the API's JSON error shape with a stable code, not gunicorn's HTML page."""
    tmp, db_url, policy, key = setup
    served = Served(tmp, db_url, policy, workers=1)
    try:
        cases = [
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", 431, "E_HEADERS_TOO_LARGE"),
            (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, "E_BAD_HTTP"),
            (b"GARBAGE\r\n\r\n", 400, "E_BAD_HTTP"),
        ]
        for request, status, code in cases:
            got, headers, body = _raw(served.port, request)
            assert got == status and headers["Content-Type"] == "application/json", (got, headers, body[:200])
            answer = json.loads(body)
            assert answer["code"] == code and answer["message"] and answer["errors"] == {}, answer
        status, _ = served.request("GET", "/healthz")  # the worker serves on
        assert status == 200
    finally:
        log = served.stop()
    assert "Traceback" not in log, log


def test_the_demo_finds_its_book_from_any_folder_and_a_missing_book_is_one_line(tmp_path, monkeypatch):
    """`serve --demo` run outside the project folder loads the project's demo book (it crashed with a
    traceback on the relative examples/book); a --book that is no folder exits 2 with one line, before
    any database or key is made."""
    from api import cli

    monkeypatch.chdir(tmp_path)
    book = pathlib.Path(cli.build_parser().parse_args(["serve", "--demo"]).book)
    assert book.is_dir() and any(book.glob("*.csv")), book
    db = tmp_path / "x.sqlite3"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--demo",
            "--book",
            "nope",
            "--port",
            str(_free_port()),
            "--database-url",
            f"sqlite:///{db}",
            "--policy",
            str(ROOT / "policies.yaml"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert p.returncode == 2 and "--book: no folder 'nope'" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not db.exists() and not (tmp_path / "var").exists()


def test_the_demo_finds_its_policy_from_any_folder_and_a_missing_policy_is_one_line(tmp_path, monkeypatch):
    """`serve --demo` outside the project folder serves the project's policies.yaml (it stopped with "E_FILE: No
    such file" after making an audit key there); a policies.yaml in the folder still wins, outside the demo the
    default stays the folder's; a --policy that is no file exits 2 with one line, before anything is made."""
    from api import cli

    monkeypatch.chdir(tmp_path)
    parse = cli.build_parser().parse_args
    assert pathlib.Path(cli.serve_policy(parse(["serve", "--demo"]))) == ROOT / "policies.yaml"
    assert cli.serve_policy(parse(["serve"])) == "policies.yaml"
    (tmp_path / "policies.yaml").write_text("x", encoding="utf-8")
    assert cli.serve_policy(parse(["serve", "--demo"])) == "policies.yaml"
    db = tmp_path / "x.sqlite3"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--demo",
            "--policy",
            "nope.yaml",
            "--port",
            str(_free_port()),
            "--database-url",
            f"sqlite:///{db}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert p.returncode == 2 and "--policy: no file 'nope.yaml'" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not db.exists() and not (tmp_path / "var").exists()

"""Production serving with gunicorn: N worker processes (durable_rules scales with processes,
not threads). SIGHUP makes gunicorn restart its workers, which reload the policy file; a worker
whose file does not compile keeps serving the stored active version (api/service/policies.py).

The master keeps a run folder for the life of the service: `prometheus/` (prometheus_client's
multiprocess files, so /metrics sums every worker) and one marker per reload generation whose
policy file failed, so the errors are logged at ERROR once per reload rather than once per worker.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.sync import SyncWorker

# imported here, not in the SIGCHLD hook: a second child's signal arriving during that first import
# re-entered it half-initialised (AttributeError at shutdown)
from prometheus_client import multiprocess

LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S %z"
_generation = 0  # reloads (SIGHUP) so far; read in the master, inherited by each forked worker


class _Stderr(logging.StreamHandler):
    """The process's stderr at the time of each line (it may be replaced after the handler is set up)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure_logging() -> None:
    """The `creditctl` loggers (access log, alerts, notifier, policy) at INFO on stderr, gunicorn's format.
    They still propagate: nothing else handles them under gunicorn, and a host's own handlers see them."""
    logger = logging.getLogger("creditctl")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class _Gunicorn(BaseApplication):
    def __init__(self, factory, options):
        self._factory, self._options = factory, options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._factory()


def _on_reload(arbiter) -> None:
    global _generation
    _generation += 1


# what gunicorn itself refuses before the app sees the request (a request line or header too long or not
# HTTP) answers the API's one JSON error shape too, not gunicorn's HTML page
_GUNICORN_CODES = {400: "E_BAD_HTTP", 431: "E_HEADERS_TOO_LARGE", 403: "E_FORBIDDEN", 500: "E_INTERNAL"}


def _write_json_error(sock, status_int, reason, mesg) -> None:
    body = json.dumps(
        {"code": _GUNICORN_CODES.get(status_int, f"E_HTTP_{status_int}"), "message": mesg or reason, "errors": {}},
        ensure_ascii=False,
    ).encode("utf-8")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


class JsonErrorWorker(SyncWorker):
    """gunicorn's sync worker answering its own refusals as JSON. handle_error writes through
    gunicorn.util.write_error: swapped for the call (a sync worker serves one request at a time)."""

    def handle_error(self, req, client, addr, exc):
        html = gunicorn_util.write_error
        gunicorn_util.write_error = _write_json_error
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            gunicorn_util.write_error = html


def _child_exit(arbiter, worker) -> None:
    multiprocess.mark_process_dead(worker.pid)  # its live gauges leave the sums; its counters stay


def _worker_exit(arbiter, worker) -> None:
    """A worker stopping cleanly (a HUP, a shutdown) leaves now: while the interpreter tears down, the
    master's repeated SIGTERM would otherwise kill it and gunicorn log "[ERROR] Worker was sent SIGTERM!"."""
    exc = sys.exc_info()[1]
    if worker.booted and isinstance(exc, SystemExit) and exc.code in (0, None):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)


def first_report(run_dir: str | None):
    """A callable for the workers (and the master at start): report(what) is True for the first process of
    this reload generation to report its policy file's failure as `what` ("log": at ERROR; "count": in
    creditctl_policy_reload_failures_total), False for the others."""

    def report(what: str) -> bool:
        if not run_dir:
            return True
        try:
            os.close(
                os.open(
                    os.path.join(run_dir, f"policy-failed-{_generation}-{what}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY
                )
            )
            return True
        except FileExistsError:
            return False

    return report


def make_run_dir() -> str:
    run_dir = tempfile.mkdtemp(prefix="creditctl-run-")
    os.mkdir(os.path.join(run_dir, "prometheus"))
    return run_dir


def run_gunicorn(
    database_url: str, policy_file: str, host: str, port: int, workers: int, run_dir: str | None = None
) -> None:
    from .app import create_app

    run_dir = run_dir or make_run_dir()
    prometheus_dir = os.path.join(run_dir, "prometheus")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prometheus_dir  # read by prometheus_client in the workers

    def factory():
        configure_logging()
        return create_app(
            {
                "DATABASE_URL": database_url,
                "POLICY_FILE": policy_file,
                "MIGRATE": False,
                "METRICS_MULTIPROC_DIR": prometheus_dir,
                "POLICY_FILE_FALLBACK": True,
                "POLICY_FAILURE_FIRST": first_report(run_dir),
            }
        )

    # sync workers: a credit check is CPU-bound Python, so one process per core (threads would share a GIL)
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": f"{__name__}.JsonErrorWorker",
        "timeout": 60,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": False,
        "on_reload": _on_reload,
        "child_exit": _child_exit,
        "worker_exit": _worker_exit,
    }
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"  # the heartbeat file is touched per request: keep it off disk
    try:
        _Gunicorn(factory, options).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

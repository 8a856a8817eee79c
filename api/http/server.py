"""Production serving with gunicorn: N worker processes (durable_rules scales with processes,
not threads). SIGHUP makes gunicorn restart its workers, which reload the policy file."""
from __future__ import annotations

import os

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    def __init__(self, factory, options):
        self._factory, self._options = factory, options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._factory()


def run_gunicorn(database_url: str, policy_file: str, host: str, port: int, workers: int) -> None:
    from .app import create_app

    def factory():
        return create_app({"DATABASE_URL": database_url, "POLICY_FILE": policy_file, "MIGRATE": False})

    # sync workers: a credit check is CPU-bound Python, so one process per core (threads would share a GIL)
    options = {"bind": f"{host}:{port}", "workers": workers, "worker_class": "sync", "timeout": 60,
               "accesslog": None, "errorlog": "-", "loglevel": "warning", "preload_app": False}
    if os.path.isdir("/dev/shm"):
        options["worker_tmp_dir"] = "/dev/shm"      # the heartbeat file is touched per request: keep it off disk
    _Gunicorn(factory, options).run()

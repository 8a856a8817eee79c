"""Whether the benchmarks can use the local PostgreSQL (shared by sweep_bench.py and http_bench.py)."""

from __future__ import annotations

import socket


def pg_reachable(admin_url: str, host: str = "127.0.0.1", port: int = 5432) -> str | None:
    """None when PostgreSQL answers at host:port and admin_url connects, else why not."""
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError as exc:
        return f"nothing listening on {host}:{port} ({exc.__class__.__name__})"
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 — any failure means "skip PostgreSQL"
        return f"cannot connect to {admin_url}: {exc.__class__.__name__}: {str(exc).strip()[:120]}"
    return None

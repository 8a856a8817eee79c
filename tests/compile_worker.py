"""Compiles policy texts in a separate process for the tests, so that a text that hangs the compiler
(a loop in C holds the GIL: no timer in pytest's process could stop it) or crashes it (libyaml
overflows the C stack on deep nesting) fails the case that sent it instead of freezing pytest.

    with CompileWorker() as worker:
        answer = worker.compile(text_bytes, timeout=10)     # raises Hung (and restarts) past timeout

Each answer is a dict: {"outcome": "invalid", "errors": [PolicyError.to_dict(), ...]};
{"outcome": "compiled", "version": ..., "evaluated": "decision" | "InputInvalid" | "EngineFailure"}
(the compiled policy evaluates the worked example of docs/decisions.md once); or
{"outcome": "exception", "type": ..., "traceback": ...} for anything else: what the tests look for.
Run as a script it is the worker: a 4-byte big-endian length and the text on stdin, one JSON line
per text on stdout.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "fuzz.yaml"


class Hung(Exception):
    pass


class Crashed(Exception):
    pass


def _answer(text: bytes, case: dict) -> dict:
    import datetime as dt
    import traceback

    from engine import EngineFailure, InputInvalid, PolicyInvalid, compile_policy, evaluate

    try:
        policy = compile_policy(text, SOURCE)
    except PolicyInvalid as exc:
        return {"outcome": "invalid", "errors": [e.to_dict() for e in exc.errors]}
    except BaseException as exc:  # noqa: BLE001 — anything but PolicyInvalid is the finding
        return {"outcome": "exception", "type": type(exc).__name__, "traceback": traceback.format_exc()}
    try:
        try:
            evaluate(policy, case, dt.date(2026, 11, 22), order="30000")
            evaluated = "decision"
        except (InputInvalid, EngineFailure) as exc:
            evaluated = type(exc).__name__
        return {"outcome": "compiled", "version": policy.version, "evaluated": evaluated}
    except BaseException as exc:  # noqa: BLE001
        return {"outcome": "exception", "type": type(exc).__name__, "traceback": traceback.format_exc()}
    finally:
        policy.dispose()


def _serve() -> None:
    from decimal import Decimal

    case = json.loads((ROOT / "examples" / "customer.json").read_text(encoding="utf-8"), parse_float=Decimal)
    stdin, stdout = sys.stdin.buffer, sys.stdout
    while True:
        header = stdin.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack(">I", header)
        text = stdin.read(size)
        stdout.write(json.dumps(_answer(text, case)) + "\n")
        stdout.flush()


class CompileWorker:
    def __init__(self):
        self._proc = None
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()

    def __enter__(self):
        self._start()
        return self

    def __exit__(self, *exc):
        self._stop()
        self._stderr.close()

    def _start(self):
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, __file__], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )

    def _stop(self):
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc.stdin.close()
            self._proc.stdout.close()
            self._proc = None

    def compile(self, text: bytes | str, timeout: float = 10.0) -> dict:
        """The worker's answer for `text`. Hung past `timeout` seconds, Crashed if the worker died;
        either way a fresh worker takes the next text."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        self._proc.stdin.write(struct.pack(">I", len(data)) + data)
        self._proc.stdin.flush()
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                self._stop()
                self._start()
                raise Hung(f"no answer within {timeout:.0f} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                code = self._proc.wait()
                self._stderr.seek(0)
                tail = self._stderr.read()[-2000:].decode("utf-8", "replace")
                self._stderr.seek(0)
                self._stderr.truncate()
                self._stop()
                self._start()
                raise Crashed(f"the worker died (exit code {code}): {tail}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


if __name__ == "__main__":
    _serve()

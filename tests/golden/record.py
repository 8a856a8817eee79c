"""A pytest plugin that records every evaluation the engine tests make, to replay them later.

    .venv/bin/python -m pytest tests/test_*.py -p golden.record -q     (with tests/ on sys.path)

Each call of engine.evaluator.evaluate / evaluate_loaded_with_facts is written with its policy text,
its input (dates and Decimals tagged), and the sha256 of the decision's canonical JSON (or the codes
of the refusal). tests/test_golden_decisions.py evaluates the same inputs with today's code and
compares: the decision a client reads must stay byte-identical (issue 8, structured reasons). The
corpus in tests/golden/ was recorded at commit 883bf6a, before reasons became structured.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from decimal import Decimal

OUT = os.environ.get("GOLDEN_OUT", os.path.join(os.path.dirname(__file__), "engine_calls.jsonl.gz"))


def tag(value):
    if isinstance(value, dict):
        return {"$o": [[tag(k), tag(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [tag(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):         # JsonFloat: a JSON number with a fraction (the CLI's reading)
        return {"$jf" if type(value).__name__ == "JsonFloat" else "$n": str(value)}
    if isinstance(value, float):
        return {"$f": repr(value)}
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(type(value).__name__)


def untag(value):
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if "$o" in value:
            return {untag(k): untag(v) for k, v in value["$o"]}
        if "$dt" in value:
            return dt.datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return dt.date.fromisoformat(value["$d"])
        if "$n" in value:
            return Decimal(value["$n"])
        if "$jf" in value:
            from rules.money import JsonFloat
            return JsonFloat(value["$jf"])
        if "$f" in value:
            return float(value["$f"])
    return value


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_calls: list = []
_texts: dict = {}


def _wrap(fn, name):
    def wrapper(policy, case, as_of, order=None):
        import copy
        snapshot = copy.deepcopy((case, as_of, order))
        try:
            result = fn(policy, case, as_of, order)
        except Exception as exc:
            codes = sorted((e.field, e.code, e.message) for e in getattr(exc, "errors", ()) or ())
            out = {"error": type(exc).__name__, "codes": codes}
            raise
        else:
            decision = result[0] if isinstance(result, tuple) else result
            out = {"sha": digest(decision.json), "version": decision.data["policy_version"]}
        finally:
            try:
                text = policy.text
                key = digest(text)
                _texts.setdefault(key, text)
                _calls.append({"fn": name, "policy": key, "input": tag(list(snapshot)), **out})
            except Exception:            # an input that cannot be recorded (e.g. a deliberately odd type)
                pass
        return result
    return wrapper


def pytest_configure(config):
    import engine
    from engine import evaluator
    evaluator.evaluate = engine.evaluate = _wrap(evaluator.evaluate, "evaluate")
    evaluator.evaluate_loaded_with_facts = _wrap(evaluator.evaluate_loaded_with_facts, "evaluate_loaded")


def pytest_unconfigure(config):
    seen, rows = set(), []
    for call in _calls:
        key = json.dumps({k: call[k] for k in ("fn", "policy", "input")}, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            rows.append(call)
    with gzip.open(OUT, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"policies": _texts}, ensure_ascii=False) + "\n")
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"\ngolden: {len(rows)} evaluations over {len(_texts)} policy texts written to {OUT}")

"""Stress test of the durable_rules adapter (engine/matcher.py) under threads and hot reloads.

4 worker threads run 200,000 matches in total against two "tenants", each holding a current
compiled policy; a reloader thread performs 30 hot reloads while they run (compile the next
of 3 policy versions, swap it into the tenant's holder, dispose the old one). A caller that
hits `Disposed` retries on the holder's new current policy. Every result is compared with
the plain-Python reference (tests/reference.py), and RSS must stay flat.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import compile_policy
from rules.fields import DECISION, PROFILE
from engine.matcher import Disposed

sys.path.insert(0, os.path.dirname(__file__))  # tests/ is not a package: make `reference` importable
from reference import (
    field_domains,
    matching_rule_ids,
    merge_domains,
    random_fact,  # noqa: E402
    replace_category,
    replace_section,
)

THREADS = 4
MATCHES_PER_THREAD = 50_000  # 200,000 in total
RELOADS = 30
FACTS_PER_PHASE = 3_000
RSS_GROWTH_LIMIT_MB = 64
WATCHDOG_S = 240  # a frozen engine (GIL held in C) must not hang CI forever

SHIPPED = (Path(__file__).resolve().parent.parent / "policies.yaml").read_text(encoding="utf-8")


def _versions() -> list[str]:
    """Three policy texts whose rules match differently (thresholds, any/in, field refs, non-ASCII)."""
    v1 = replace_section(
        SHIPPED,
        "alerts",
        [
            {
                "id": "alert.stage",
                "severity": "critical",
                "message": "",
                "when": {
                    "any": [
                        {"field": "dunning_stage", "gte": 1},
                        {"field": "dunning_stage", "gte": 2},
                        {"field": "aging_bucket", "in": ["medium", "long"]},
                    ]
                },
            },
            {
                "id": "alert.utilisation",
                "severity": "warning",
                "message": "",
                "when": {"field": "utilisation", "gte": "75.5"},
            },
            {
                "id": "alert.headroom",
                "severity": "info",
                "message": "",
                "when": {"not": {"field": "exposure_after_order", "lte": {"field": "credit_limit"}}},
            },
            {
                "id": "alert.score_drop",
                "severity": "warning",
                "message": "",
                "when": {"all": [{"field": "score_drop", "gt": 5}, {"field": "aging_worsened", "eq": False}]},
            },
        ],
    )
    v1 = replace_section(
        v1,
        "segments",
        [
            {
                "id": "segment.young_overdue",
                "strategy": ["watch"],
                "when": {
                    "all": [{"field": "customer_age_days", "lt": 365}, {"field": "collectable_days_overdue", "gte": 10}]
                },
            },
            {"id": "segment.not_small", "strategy": ["visit"], "when": {"field": "amount_tier", "not_in": ["small"]}},
        ],
    )
    v2 = replace_category(SHIPPED, "region", ["local", "remote", "本地", "外地"])
    v2 = replace_section(
        v2,
        "segments",
        [
            {
                "id": "segment.local_cn",
                "strategy": ["local_team"],
                "when": {"field": "region", "in": ["本地", "local"]},
            },
            {"id": "segment.remote_cn", "strategy": ["phone"], "when": {"field": "region", "eq": "外地"}},
            {"id": "segment.always", "when": "always", "strategy": ["all"]},
        ],
    )
    v2 = replace_section(
        v2,
        "alerts",
        [
            {
                "id": "alert.over",
                "severity": "critical",
                "message": "",
                "when": {"field": "exposure_after_order", "gte": {"field": "credit_limit"}},
            },
            {
                "id": "alert.entered",
                "severity": "warning",
                "message": "",
                "when": {
                    "any": [
                        {"field": "invoices_entering_medium", "gt": 0},
                        {"field": "invoices_entering_long", "gt": 0},
                    ]
                },
            },
        ],
    )
    return [SHIPPED, v1, v2]


class Holder:
    """A tenant's current (version index, CompiledPolicy); replaced whole, so reads are atomic."""

    def __init__(self, index: int, policy):
        self.current = (index, policy)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.stress
def test_threads_and_hot_reloads_match_the_reference():
    texts = _versions()
    reference = [compile_policy(t, f"v{i}.yaml") for i, t in enumerate(texts)]  # rules for the reference
    for p in reference:
        p.dispose()
    assert len({p.version for p in reference}) == 3
    phases = (PROFILE, DECISION)
    rnd = random.Random(7)
    pools, expected = {}, [{} for _ in texts]
    for phase in phases:
        domains, refs = merge_domains(*(field_domains(p, phase) for p in reference))
        pools[phase] = [random_fact(rnd, domains, refs) for _ in range(FACTS_PER_PHASE)]
        for v, p in enumerate(reference):
            expected[v][phase] = [matching_rule_ids(p, phase, f) for f in pools[phase]]
    for phase in phases:  # the versions really disagree, so a stale ruleset would be caught
        assert expected[0][phase] != expected[1][phase] and expected[1][phase] != expected[2][phase]

    holders = [Holder(0, compile_policy(texts[0])), Holder(1, compile_policy(texts[1]))]
    reloads = [0]
    compile_s = []

    def reload(k: int) -> None:
        holder = holders[k % 2]
        index = (holder.current[0] + 1) % len(texts)
        t0 = time.perf_counter()
        new = compile_policy(texts[index], f"v{index}.yaml")
        compile_s.append(time.perf_counter() - t0)
        old = holder.current[1]
        holder.current = (index, new)  # swap first, then retire: in-flight callers finish first
        old.dispose()
        reloads[0] += 1

    def one_match(holder, phase, i):
        for _ in range(100):
            version, policy = holder.current
            try:
                return version, policy.matchers[phase].match(pools[phase][i])
            except Disposed:
                continue
        raise AssertionError("the holder kept handing out disposed policies")

    # warm-up, single-threaded: a few reloads and matches, then the RSS baseline
    for k in range(4):
        reload(k)
        for i in range(2_500):
            phase = phases[i % 2]
            version, got = one_match(holders[i % 2], phase, i)
            assert got == expected[version][phase][i]
    gc.collect()
    rss_start = _rss_mb()

    progress = [0] * THREADS
    wrong, errors, retries = [], [], [0] * THREADS
    done = threading.Event()

    def worker(t: int) -> None:
        r = random.Random(1000 + t)
        try:
            for n in range(MATCHES_PER_THREAD):
                holder, phase = holders[r.getrandbits(1)], phases[r.getrandbits(1)]
                i = r.randrange(FACTS_PER_PHASE)
                while True:
                    version, policy = holder.current
                    try:
                        got = policy.matchers[phase].match(pools[phase][i])
                        break
                    except Disposed:
                        retries[t] += 1
                        if retries[t] > 10_000:
                            raise
                if got != expected[version][phase][i]:
                    wrong.append((t, version, phase, i, got))
                if n % 256 == 0:
                    progress[t] = n
            progress[t] = MATCHES_PER_THREAD
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(f"worker {t}: {type(exc).__name__}: {exc}")

    def reloader() -> None:
        try:
            total = THREADS * MATCHES_PER_THREAD
            for k in range(1, RELOADS + 1):
                while sum(progress) < total * k // (RELOADS + 2):
                    if done.is_set():
                        return
                    time.sleep(0.002)
                reload(k)
        except BaseException as exc:  # noqa: BLE001
            errors.append(f"reloader: {type(exc).__name__}: {exc}")

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # switch threads 50× more often than CPython's default
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    started = time.perf_counter()
    try:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        reload_thread = threading.Thread(target=reloader)
        for th in threads + [reload_thread]:
            th.start()
        for th in threads:
            th.join()
        done.set()
        reload_thread.join()
    finally:
        faulthandler.cancel_dump_traceback_later()
        sys.setswitchinterval(switch)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_end = _rss_mb()
    for holder in holders:
        holder.current[1].dispose()

    total = sum(progress)
    print(
        f"\nstress: {total:,} matches from {THREADS} threads in {elapsed:.1f} s "
        f"({total / elapsed:,.0f}/s), {reloads[0]} reloads (compile median "
        f"{sorted(compile_s)[len(compile_s) // 2] * 1000:.0f} ms), {sum(retries)} Disposed retries, "
        f"{len(wrong)} wrong, RSS {rss_start:.1f} → {rss_end:.1f} MB"
    )
    assert errors == []
    assert wrong[:5] == [] and len(wrong) == 0
    assert total == THREADS * MATCHES_PER_THREAD >= 200_000
    assert reloads[0] >= 20 + 4
    assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB

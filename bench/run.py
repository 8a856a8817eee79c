"""creditctl benchmarks (`make bench`): prints figures beside their targets, asserts nothing.

    (a) full customer evaluations/s of the shipped policy (generated customers, 10 open invoices each),
        and the same cases through evaluate_loaded (already typed, as the ledger has them: no marshmallow)
    (b) engine matches/s (Matcher.match on prepared facts) vs a hand-written Python function
    (c) compile time of a generated 500-rule policy (and matching on it)
    (d) where the time of one full evaluation goes (load_case, build_facts, matching, assembly, JSON),
        and the top cProfile hotspots

Single thread, time.perf_counter, median of 3 runs (with the range of the runs: the machine may be
shared, so compare figures from the same run), deterministic seed. Results: bench/README.md.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import io
import json
import os
import platform
import pstats
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from engine import build_facts, compile_policy, evaluate, evaluate_facts, evaluate_loaded, load_case  # noqa: E402
from engine.decision import canonical_json  # noqa: E402
from engine.errors import PolicyInvalid  # noqa: E402
from engine.evaluator import parse_order  # noqa: E402
from rules.fields import DECISION, PROFILE  # noqa: E402
from engine.matcher import Matcher  # noqa: E402
from reference import (  # noqa: E402
    field_domains,
    matching_rule_ids,
    random_case,
    random_fact,
    random_order,
    replace_section,
)

SEED = 20261122
AS_OF = dt.date(2026, 11, 30)
CASES = 400
OPEN_INVOICES = 10
RUNS = 3
TARGET_EVALS = 10_000
TARGET_MATCHES = 50_000
TARGET_COMPILE_S = 1.0
POLICY_TEXT = (ROOT / "policies.yaml").read_text(encoding="utf-8")


def timings(fn, runs=RUNS) -> list[float]:
    out = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def rate_of(fn, items, runs=RUNS) -> tuple[float, str]:
    """Median items/s over `runs` calls of fn(), and the range of the runs as text."""
    rates = sorted(items / t for t in timings(fn, runs))
    return statistics.median(rates), f"(runs {rates[0]:,.0f}–{rates[-1]:,.0f})"


def seconds_of(fn, runs=RUNS) -> tuple[float, str]:
    times = sorted(timings(fn, runs))
    return statistics.median(times), f"(runs {times[0] * 1000:,.0f}–{times[-1] * 1000:,.0f} ms)"


def verdict(value, target, higher_is_better=True):
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "BELOW TARGET" if higher_is_better else "ABOVE TARGET"


def header(title):
    print(f"\n== {title}")


# ---------------------------------------------------------------- hand-written shipped policy
def profile_py(f):
    """The shipped policy's profile rules as plain Python, in definition order."""
    out = []
    rep, tier, days = f["reputation"], f["amount_tier"], f["collectable_days_overdue"]
    region, industry = f["region"], f["industry"]
    if rep == "high":
        out.append("credit.limit.high")
    if rep == "medium":
        out.append("credit.limit.medium")
    if rep == "low":
        out.append("credit.limit.low")
    if f["customer_age_days"] < 180:
        out.append("credit.limit.new_customer")
    if tier == "large":
        out.append("owner.dedicated")
    if tier == "small":
        out.append("owner.automated")
    out.append("owner.team")
    if days >= 1:
        out.append("dunning.stage1")
    if days >= 31:
        out.append("dunning.stage2")
    if days >= 15 and tier == "large":
        out.append("dunning.stage2.large")
    if region == "local":
        out.append("dunning.stage2.visit")
    if region == "remote":
        out.append("dunning.stage2.call")
    if tier in ("medium", "large"):
        out.append("dunning.stage2.lawyer")
    if tier == "small" and days >= 91:
        out.append("dunning.stage2.write_off")
    if days >= 91 and tier in ("medium", "large"):
        out.append("dunning.stage3")
    if days >= 31 and f["arrears_reason"] == "malicious_delay":
        out.append("dunning.stage3.malicious")
    if rep in ("high", "medium") and industry == "manufacturing":
        out.append("repayment.instalments.manufacturing")
    if rep in ("high", "medium"):
        out.append("repayment.instalments.default")
    if rep == "high":
        out.append("repayment.deferral.high")
    if rep == "low":
        out.append("review.low")
    if rep == "medium":
        out.append("review.medium")
    if rep == "high":
        out.append("review.high")
    if industry == "manufacturing" and tier == "large":
        out.append("segment.manufacturing_large")
    if industry == "services":
        out.append("segment.services")
    if region == "remote":
        out.append("segment.remote")
    return out


def decision_py(f):
    out = []
    if f["exposure_after_order"] > f["credit_limit"]:
        out.append("check.over_limit")
    if f["aging_bucket"] == "long":
        out.append("check.long_overdue")
    if f["dunning_stage"] >= 3:
        out.append("check.stage3")
    if f["dunning_stage"] == 2:
        out.append("check.stage2")
    if f["utilisation_after_order"] > 9000:
        out.append("check.high_utilisation")
    if f["deposit_pct"] > 0:
        out.append("check.deposit")
    if f["utilisation"] > 9000:
        out.append("alert.utilisation")
    if f["invoices_entering_medium"] > 0:
        out.append("alert.entered_medium")
    if f["invoices_entering_long"] > 0:
        out.append("alert.entered_long")
    if f["new_broken_promises"] > 0:
        out.append("alert.broken_promise")
    if f["aging_worsened"] is True:
        out.append("alert.aging_worsened")
    if f["score_drop"] >= 10:
        out.append("alert.score_drop")
    return out


HAND_WRITTEN = {PROFILE: profile_py, DECISION: decision_py}


class Timed:
    """Wraps a policy's real Matcher: accumulates the time spent in match() and keeps the facts."""

    def __init__(self, matcher, keep: list):
        self.matcher, self.keep, self.seconds, self.calls = matcher, keep, 0.0, 0

    def match(self, fact):
        self.keep.append(dict(fact))
        t0 = time.perf_counter()
        try:
            return self.matcher.match(fact)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


# ---------------------------------------------------------------- (a)
def bench_evaluations(policy):
    rnd = random.Random(SEED)
    cases = [
        (random_case(rnd, policy, AS_OF, open_invoices=OPEN_INVOICES, ident=i), random_order(rnd)) for i in range(CASES)
    ]

    def run_all():
        for case, order in cases:
            evaluate(policy, case, AS_OF, order=order)

    run_all()  # warm-up
    rate, spread = rate_of(run_all, len(cases))
    header(
        f"(a) full evaluations, shipped policy: {len(cases)} distinct generated customers with "
        f"{OPEN_INVOICES} open invoices (+0-4 settled) each, {sum(o is not None for _, o in cases)} with an order"
    )
    print(
        f"    {rate:>10,.0f} evaluations/s {spread}, {1e6 / rate:,.0f} µs each   "
        f"target ≥ {TARGET_EVALS:,}/s: {verdict(rate, TARGET_EVALS)}"
    )

    loaded = [(load_case(case, policy), order) for case, order in cases]
    same = sum(
        evaluate_loaded(policy, typed, AS_OF, order=order).json == evaluate(policy, case, AS_OF, order=order).json
        for (typed, order), (case, _) in zip(loaded, cases)
    )

    def run_loaded():
        for typed, order in loaded:
            evaluate_loaded(policy, typed, AS_OF, order=order)

    run_loaded()
    rate, spread = rate_of(run_loaded, len(loaded))
    print(
        f"    {rate:>10,.0f} evaluations/s {spread}, {1e6 / rate:,.0f} µs each   with evaluate_loaded "
        f"(cases already typed, no marshmallow); same decision as evaluate() for {same}/{len(cases)}"
    )
    return cases, run_all


# ---------------------------------------------------------------- (b)
def bench_matching(policy, prepared):
    header("(b) matching one prepared fact: durable_rules (Matcher.match) vs hand-written Python")
    rnd = random.Random(SEED + 1)
    for phase in (PROFILE, DECISION):
        facts = prepared[phase]
        domains, refs = field_domains(policy, phase)
        probe = facts + [random_fact(rnd, domains, refs) for _ in range(2000)]
        matcher, python = policy.matchers[phase], HAND_WRITTEN[phase]
        agree = sum(matcher.match(f) == python(f) == matching_rule_ids(policy, phase, f) for f in probe)
        per_fact = statistics.mean(len(python(f)) for f in facts)
        loops = max(1, 20_000 // len(facts))

        def engine_run():
            for _ in range(loops):
                for f in facts:
                    matcher.match(f)

        def python_run():
            for _ in range(loops * 10):
                for f in facts:
                    python(f)

        engine_run()
        engine_rate, engine_spread = rate_of(engine_run, loops * len(facts))
        python_rate, python_spread = rate_of(python_run, loops * 10 * len(facts))
        n_rules = sum(r.phase == phase for r in policy.rules)
        print(
            f"    {phase:<8} {n_rules:>2} rules, {per_fact:4.1f} matched per fact, {len(facts)} facts from (a); "
            f"engine = python = reference on {agree}/{len(probe)} facts"
        )
        print(
            f"      engine {engine_rate:>12,.0f} matches/s {engine_spread}   target ≥ {TARGET_MATCHES:,}/s: "
            f"{verdict(engine_rate, TARGET_MATCHES)}"
        )
        print(
            f"      python {python_rate:>12,.0f} matches/s {python_spread}   "
            f"python/engine = {python_rate / engine_rate:,.0f}×"
        )
        if phase == PROFILE:
            profile_hotspots(engine_run, "the profile-phase engine loop", top=6)


# ---------------------------------------------------------------- (c)
INDUSTRIES = ("manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading", "other")
REGIONS = ("local", "remote")
BUCKETS = ("current", "short", "medium", "long")


def generated_policy_text(n_segments=250, n_alerts=250):
    """500 rules, each gated by equalities before its one range test (engine limits, notes §6)."""
    segments = [
        {
            "id": f"segment.gen{i}",
            "strategy": ["generated"],
            "when": {
                "all": [
                    {"field": "industry", "eq": INDUSTRIES[i % 7]},
                    {"field": "region", "eq": REGIONS[(i // 7) % 2]},
                    {"field": "customer_age_days", "gte": (i * 7) % 200},
                ]
            },
        }
        for i in range(n_segments)
    ]
    alerts = [
        {
            "id": f"alert.gen{i}",
            "severity": "info",
            "message": "",
            "when": {
                "all": [
                    {"field": "industry", "eq": INDUSTRIES[i % 7]},
                    {"field": "aging_bucket", "eq": BUCKETS[(i // 7) % 4]},
                    {"field": "utilisation", "gt": f"{(i * 37) % 10000 / 100:.2f}"},
                ]
            },
        }
        for i in range(n_alerts)
    ]
    text = replace_section(POLICY_TEXT, "segments", segments, block=True)
    return replace_section(text, "alerts", alerts, block=True)


def bench_compile():
    text = generated_policy_text()
    shipped_s, _ = seconds_of(lambda: compile_policy(POLICY_TEXT).dispose())
    try:
        compile_policy(text, "generated-500.yaml").dispose()
    except PolicyInvalid as exc:
        header("(c) compile a generated 500-rule policy: SKIPPED, the compiler refuses it")
        for error in exc.errors[:3]:
            print(f"    {error.format()}")
        return
    compiled = []
    seconds, spread = seconds_of(lambda: compiled.append(compile_policy(text, "generated-500.yaml")))
    big = compiled.pop()
    for p in compiled:
        p.dispose()
    definitions = {
        phase: {k: v for k, v in json.loads(m._definition_json).items() if "__prime__" not in json.dumps(v)}
        for phase, m in big.matchers.items()
    }
    build_s, _ = seconds_of(lambda: [Matcher(f"bench.{phase}", d).dispose() for phase, d in definitions.items()])
    header(
        f"(c) compile a generated policy: 500 generated alert/segment rules + the shipped policy's others "
        f"= {len(big.rules)} rules"
    )
    print(
        f"    compile_policy {seconds * 1000:>8,.0f} ms {spread}   target < {TARGET_COMPILE_S:.0f} s: "
        f"{verdict(seconds, TARGET_COMPILE_S, higher_is_better=False)}"
    )
    print(
        f"      of which creating + priming the 2 durable_rules rulesets: {build_s * 1000:,.0f} ms; "
        f"the shipped policy compiles in {shipped_s * 1000:,.0f} ms"
    )
    rnd = random.Random(SEED + 2)
    for phase in (PROFILE, DECISION):
        domains, refs = field_domains(big, phase)
        facts = [random_fact(rnd, domains, refs) for _ in range(2000)]
        agree = sum(big.matchers[phase].match(f) == matching_rule_ids(big, phase, f) for f in facts)
        per_fact = statistics.mean(len(matching_rule_ids(big, phase, f)) for f in facts)
        rate, spread = rate_of(lambda: [big.matchers[phase].match(f) for f in facts], len(facts))
        print(
            f"    {phase:<8} {sum(r.phase == phase for r in big.rules):>3} rules: {rate:>8,.0f} matches/s {spread}, "
            f"{per_fact:.1f} matched per random fact; engine = reference on {agree}/{len(facts)}"
        )
    big.dispose()


# ---------------------------------------------------------------- (d)
def instrumented_pass(policy, cases):
    """One pass with each stage timed; the real matchers are wrapped to time them and keep their facts."""
    prepared = {PROFILE: [], DECISION: []}
    originals = dict(policy.matchers)
    stage = dict.fromkeys(("load_case", "build_facts", "evaluate_facts"), 0.0)
    timed = {}
    decisions = []
    try:
        for phase in originals:
            timed[phase] = policy.matchers[phase] = Timed(originals[phase], prepared[phase])
        for case, order in cases:
            t0 = time.perf_counter()
            order_minor, order_id = parse_order(order, policy)
            loaded = load_case(case, policy)
            t1 = time.perf_counter()
            facts = build_facts(loaded, policy, AS_OF, order_minor, order_id)
            t2 = time.perf_counter()
            decisions.append(evaluate_facts(policy, facts))
            t3 = time.perf_counter()
            stage["load_case"] += t1 - t0
            stage["build_facts"] += t2 - t1
            stage["evaluate_facts"] += t3 - t2
    finally:
        policy.matchers.update(originals)
    bodies = [d.data for d in decisions]
    t0 = time.perf_counter()
    for body in bodies:
        canonical_json(body)  # the evaluator's last step, timed again on its own
    stage["json"] = time.perf_counter() - t0
    stage["matching"] = sum(t.seconds for t in timed.values())
    stage["match_calls"] = sum(t.calls for t in timed.values())
    stage["decision_bytes"] = statistics.mean(len(d.json.encode()) for d in decisions)
    stage["reasons"] = statistics.mean(len(b["reasons"]) for b in bodies)
    return prepared, stage


def print_breakdown(stage, n_cases, run_all):
    total = stage["load_case"] + stage["build_facts"] + stage["evaluate_facts"]
    rows = [
        ("load_case (marshmallow validation, parse_order)", stage["load_case"]),
        ("build_facts (allocation, aging, promises)", stage["build_facts"]),
        (f"matching ({stage['match_calls'] // n_cases} Matcher.match calls per evaluation)", stage["matching"]),
        (
            "assembly (scorecard, bands, messages, interest, reasons)",
            stage["evaluate_facts"] - stage["matching"] - stage["json"],
        ),
        (
            f"canonical JSON of the decision (~{stage['decision_bytes']:,.0f} bytes, {stage['reasons']:.0f} reasons)",
            stage["json"],
        ),
    ]
    header(f"(d) where one full evaluation goes (mean over {n_cases} cases, one instrumented pass)")
    for label, secs in rows:
        print(f"    {label:<66} {secs / n_cases * 1e6:>7,.0f} µs {secs / total:>6.1%}")
    print(f"    {'total':<66} {total / n_cases * 1e6:>7,.0f} µs")
    profile_hotspots(run_all, f"one pass of the {n_cases} evaluations")


def profile_hotspots(fn, what, top=15):
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt
    by_area: dict[str, float] = {}
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        area = _area(file, func)
        by_area[area] = by_area.get(area, 0.0) + tottime
        rows.append((tottime, cumtime, ncalls, f"{_short(file)}:{line}({func})" if file != "~" else func))
    print(f"    cProfile of {what} ({total:.2f} s under the profiler); own time by area:")
    for area, secs in sorted(by_area.items(), key=lambda kv: -kv[1]):
        if secs / total >= 0.01:
            print(f"      {secs / total:>6.1%}  {area}")
    print("    top functions: own time, cumulative time, calls:")
    for tottime, cumtime, ncalls, name in sorted(rows, reverse=True)[:top]:
        print(f"      {tottime / total:>6.1%} {cumtime / total:>7.1%} {ncalls:>8}  {name}")


def _short(file):
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in file:
            return file.split(marker, 1)[1]
    stdlib = re.search(r"lib/python3\.\d+/(.*)", file)
    return f"stdlib:{stdlib.group(1)}" if stdlib else file


def _area(file, func):
    if file == "~":
        if "durable_rules_engine" in func:
            return "durable_rules C core"
        return "C builtins and methods (str, dict, json encoder, decimal, ...)"
    short = _short(file)
    if short.startswith("stdlib:"):
        return f"stdlib {short[7:].split('/')[0].removesuffix('.py')} (Python part)"
    if short.startswith("marshmallow"):
        return "marshmallow (load_case)"
    if short.startswith(("engine/", "rules/")):
        return short.removesuffix(".py")
    return short.split("/")[0]


def main():
    tunables = os.environ.get("GLIBC_TUNABLES")
    print(
        f"creditctl bench · Python {platform.python_version()} · {platform.machine()} · "
        f"{os.cpu_count()} CPUs · seed {SEED} · median of {RUNS} runs · single thread"
    )
    print(
        f"GLIBC_TUNABLES {'set (as `make bench` does)' if tunables else 'NOT set (`make bench` sets it)'}; "
        f"load average {os.getloadavg()[0]:.2f} at start (a shared machine makes figures vary)"
    )
    policy = compile_policy(POLICY_TEXT, "policies.yaml")
    cases, run_all = bench_evaluations(policy)
    prepared, stage = instrumented_pass(policy, cases)
    bench_matching(policy, prepared)
    bench_compile()
    print_breakdown(stage, len(cases), run_all)
    policy.dispose()


if __name__ == "__main__":
    main()

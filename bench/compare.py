"""Before/after engine figures measured side by side in one run (the figures in bench/README.md).

    .venv/bin/python bench/compare.py BEFORE_TREE [AFTER_TREE] [--rounds 7]

Each tree (a copy of the repository, e.g. an older checkout; AFTER_TREE defaults to this one)
gets its own worker process, which imports that tree's engine and prepares the same workloads
as bench/run.py (same seed, same 400 generated customers, same 528-rule generated policy). The
driver then asks the two workers for one pass of every workload in turn, alternating which goes
first, and reports the median of the rounds. Times are the process's CPU time
(time.process_time), so waiting for a core on a shared machine does not count; cache and
memory-bandwidth contention still do, so compare the two columns of one run only.
"""
from __future__ import annotations

import datetime as dt
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEED = 20261122
AS_OF = dt.date(2026, 11, 30)
CASES = 400
OPEN_INVOICES = 10
HERE = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- worker (one tree)
def worker(root: str) -> None:
    sys.path[:0] = [root, os.path.join(root, "tests")]
    import engine
    from engine import build_facts, compile_policy, evaluate, evaluate_facts, load_case
    from engine.decision import Decision, canonical_json
    from engine.evaluator import parse_order
    try:                                   # the fact dictionary moved from engine/ to rules/ on 2026-12-02
        from rules.fields import DECISION, PROFILE
    except ImportError:
        from engine.fields import DECISION, PROFILE
    from reference import random_case, random_order, replace_section

    assert os.path.realpath(engine.__file__).startswith(os.path.realpath(root)), engine.__file__
    evaluate_loaded = getattr(engine, "evaluate_loaded", None)
    text = Path(root, "policies.yaml").read_text(encoding="utf-8")
    policy = compile_policy(text, "policies.yaml")
    rnd = random.Random(SEED)
    cases = [(random_case(rnd, policy, AS_OF, open_invoices=OPEN_INVOICES, ident=i), random_order(rnd))
             for i in range(CASES)]
    loaded = [(load_case(c, policy), parse_order(o, policy), o) for c, o in cases]
    facts = [build_facts(typed, policy, AS_OF, *order) for typed, order, _ in loaded]
    bodies = [evaluate_facts(policy, f).data for f in facts]
    prepared = {PROFILE: [], DECISION: []}
    originals = dict(policy.matchers)

    class Keep:
        def __init__(self, matcher, out):
            self.matcher, self.out = matcher, out

        def match(self, fact):
            self.out.append(dict(fact))
            return self.matcher.match(fact)

    for phase in originals:
        policy.matchers[phase] = Keep(originals[phase], prepared[phase])
    for f in facts:
        evaluate_facts(policy, f)
    policy.matchers.update(originals)
    big_text = generated_policy_text(text, replace_section)

    def timed(fn):
        gc.collect()
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    # what the trail stores: since issue 8 the decision with its reasons as data (format 2), rendered only
    # when read; before it, the English decision (format 1). `.json` is the English decision in both trees.
    trail_form = (lambda d: d.stored) if hasattr(Decision, "stored") else (lambda d: d.json)

    def one_pass() -> dict:
        out = {
            "evaluate": timed(lambda: [evaluate(policy, c, AS_OF, order=o) for c, o in cases]),
            "load_case": timed(lambda: [load_case(c, policy) for c, _ in cases]),
            "build_facts": timed(lambda: [build_facts(t, policy, AS_OF, *o) for t, o, _ in loaded]),
            "evaluate_facts": timed(lambda: [evaluate_facts(policy, f) for f in facts]),
            "json": timed(lambda: [canonical_json(b) for b in bodies]),
        }
        for phase in (PROFILE, DECISION):
            matcher = policy.matchers[phase]
            out[f"match_{phase}"] = timed(lambda: [matcher.match(f) for _ in range(10) for f in prepared[phase]])
        if evaluate_loaded is not None:
            out["evaluate_loaded"] = timed(lambda: [evaluate_loaded(policy, t, AS_OF, order=o) for t, _, o in loaded])
            out["loaded_stored"] = timed(lambda: [trail_form(evaluate_loaded(policy, t, AS_OF, order=o))
                                                  for t, _, o in loaded])
            out["loaded_english"] = timed(lambda: [evaluate_loaded(policy, t, AS_OF, order=o).json
                                                   for t, _, o in loaded])
        out["facts_stored"] = timed(lambda: [trail_form(evaluate_facts(policy, f)) for f in facts])
        out["facts_english"] = timed(lambda: [evaluate_facts(policy, f).json for f in facts])
        out["compile_528"] = timed(lambda: compile_policy(big_text, "generated.yaml").dispose())
        out["compile_shipped"] = timed(lambda: compile_policy(text, "policies.yaml").dispose())
        return out

    one_pass()                                   # warm-up
    print(json.dumps({"ready": True, "matches": {p: len(v) * 10 for p, v in prepared.items()}}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps(one_pass()), flush=True)


def generated_policy_text(text, replace_section, n_segments=250, n_alerts=250):
    """The 528-rule policy of bench/run.py section (c)."""
    industries = ("manufacturing", "services", "engineering_project", "manufacturer", "retail_mall", "trading",
                  "other")
    buckets = ("current", "short", "medium", "long")
    segments = [{"id": f"segment.gen{i}", "strategy": ["generated"],
                 "when": {"all": [{"field": "industry", "eq": industries[i % 7]},
                                  {"field": "region", "eq": ("local", "remote")[(i // 7) % 2]},
                                  {"field": "customer_age_days", "gte": (i * 7) % 200}]}}
                for i in range(n_segments)]
    alerts = [{"id": f"alert.gen{i}", "severity": "info", "message": "",
               "when": {"all": [{"field": "industry", "eq": industries[i % 7]},
                                {"field": "aging_bucket", "eq": buckets[(i // 7) % 4]},
                                {"field": "utilisation", "gt": f"{(i * 37) % 10000 / 100:.2f}"}]}}
              for i in range(n_alerts)]
    return replace_section(replace_section(text, "segments", segments, block=True), "alerts", alerts, block=True)


# ---------------------------------------------------------------- driver
ROWS = [  # (label, key, unit): per-item figures from the seconds of one pass
    ("(a) evaluate(): evaluations/s", "evaluate", "rate", CASES),
    ("(a) evaluate_loaded(): evaluations/s", "evaluate_loaded", "rate", CASES),
    ("(b) Matcher.match, profile phase: matches/s", "match_profile", "rate", None),
    ("(b) Matcher.match, decision phase: matches/s", "match_decision", "rate", None),
    ("(c) compile the 528-rule policy: ms", "compile_528", "ms", 1),
    ("(c) compile the shipped policy: ms", "compile_shipped", "ms", 1),
    ("(d) load_case: µs per evaluation", "load_case", "us", CASES),
    ("(d) build_facts: µs per evaluation", "build_facts", "us", CASES),
    ("(d) evaluate_facts (matching, assembly, JSON): µs", "evaluate_facts", "us", CASES),
    ("(d) of which canonical JSON: µs", "json", "us", CASES),
    ("(e) full evaluation, typed case + trail form: µs", "loaded_stored", "us", CASES),
    ("(e) full evaluation, typed case + English JSON: µs", "loaded_english", "us", CASES),
    ("(e) evaluate_facts + trail form: µs", "facts_stored", "us", CASES),
    ("(e) evaluate_facts + English JSON: µs", "facts_english", "us", CASES),
]


def main(argv):
    rounds = 7
    if "--rounds" in argv:
        i = argv.index("--rounds")
        rounds = int(argv[i + 1])
        del argv[i:i + 2]
    before = argv[0]
    after = argv[1] if len(argv) > 1 else str(HERE)
    procs, counts = {}, {}
    for side, root in (("before", before), ("after", after)):
        procs[side] = subprocess.Popen([sys.executable, __file__, "--worker", root], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
        counts[side] = json.loads(procs[side].stdout.readline())["matches"]
    print(f"before: {before}\nafter:  {after}\n{rounds} rounds, CPU time, load average at start "
          f"{os.getloadavg()[0]:.2f}")
    results = {"before": [], "after": []}
    for r in range(rounds):
        for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
            procs[side].stdin.write("run\n")
            procs[side].stdin.flush()
            results[side].append(json.loads(procs[side].stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(f"| {'figure':<52} | {'before':>10} | {'after':>10} | after/before |")
    print(f"|{'-' * 54}|{'-' * 11}:|{'-' * 11}:|{'-' * 13}:|")
    for label, key, unit, per in ROWS:
        cells = []
        for side in ("before", "after"):
            secs = [res[key] for res in results[side] if key in res]
            if not secs:
                cells.append(None)
                continue
            med = statistics.median(secs)
            n = per if per is not None else counts[side][key.split("_", 1)[1]]
            cells.append(n / med if unit == "rate" else med * 1000 if unit == "ms" else med / n * 1e6)
        ratio = f"{cells[1] / cells[0]:.2f}×" if None not in cells else "–"
        shown = [("–" if c is None else f"{c:,.0f}") for c in cells]
        print(f"| {label:<52} | {shown[0]:>10} | {shown[1]:>10} | {ratio:>12} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main(sys.argv[1:])

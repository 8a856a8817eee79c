"""The creditctl command line: policy check / test / schema, evaluate, and the service commands.

Exit codes: 0 success; 1 the policy is invalid or a policy test failed; 2 bad input: a file that
cannot be read, a bad date or amount (one line on stderr, nothing on stdout).
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import sys
from rules.money import JsonFloat

from .compiler import compile_policy
from .errors import EngineFailure, InputInvalid, PolicyInvalid
from .yamlsource import decode_text, read_text_file

DEFAULT_POLICY = "policies.yaml"


def _read_policy(path: str):
    """Compile a policy file: OSError when it cannot be read, PolicyInvalid (E_ENCODING, …) when it is bad."""
    return compile_policy(read_text_file(path), path)


def _file_error(path: str, exc: OSError, fmt: str = "text") -> int:
    message = exc.strerror or str(exc)
    if fmt == "json":
        print(json.dumps([{"code": "E_FILE", "message": message, "path": "", "file": path, "line": 0, "column": 0}],
                         ensure_ascii=False), file=sys.stderr)
    else:
        print(f"{path}: E_FILE: {message}", file=sys.stderr)
    return 2


def _print_policy_errors(exc: PolicyInvalid, fmt: str = "text") -> None:
    if fmt == "json":
        print(json.dumps([e.to_dict() for e in exc.errors], ensure_ascii=False, indent=2), file=sys.stderr)
    else:
        for e in exc.errors:
            print(e.format(), file=sys.stderr)


def cmd_policy_check(args) -> int:
    try:
        policy = _read_policy(args.file)
    except OSError as exc:
        return _file_error(args.file, exc, args.format)
    except PolicyInvalid as exc:
        _print_policy_errors(exc, args.format)
        return 1
    if args.format == "json":
        print(json.dumps({"valid": True, "version": policy.version, "rules": len(policy.rules)}))
    else:
        print(f"{args.file}: ok, version {policy.version[:12]}, {len(policy.rules)} rules")
    policy.dispose()
    return 0


def cmd_policy_test(args) -> int:
    from .policytest import run_file
    for p in args.cases:                   # before compiling: a mistyped argument is reported at once
        if not os.path.exists(p):
            return _file_error(p, FileNotFoundError(2, "No such file or directory"))
    try:
        policy = _read_policy(args.file)
    except OSError as exc:
        return _file_error(args.file, exc)
    except PolicyInvalid as exc:
        _print_policy_errors(exc)
        return 1
    paths = args.cases or sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(args.file)),
                                                        "tests", "policy", "*.yaml")))
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(glob.escape(p), "*.yaml"))) if os.path.isdir(p) else [p]
    passed = failed = 0
    for path in files:
        for result in run_file(policy, path):
            if result.passed:
                passed += 1
                if args.verbose:
                    print(f"PASS {result.file}: {result.note}")
            else:
                failed += 1
                print(f"FAIL {result.file}: {result.note}")
                for f in result.failures:
                    print(f"     {f}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


def cmd_policy_schema(args) -> int:
    from .policy_schema import json_schema
    print(json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True))
    return 0


def _input_error(field: str, message: str, code: str = "E_INPUT_INVALID") -> int:
    print(json.dumps({"code": code, "message": message, "errors": {field: [message]}},
                     ensure_ascii=False), file=sys.stderr)
    return 2


def cmd_evaluate(args) -> int:
    from .decision import canonical_json
    from .evaluator import evaluate
    try:
        with open(args.input, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return _input_error("input", f"{args.input}: {exc.strerror}")
    text, errors = decode_text(raw, args.input, yaml_text=False)
    if errors:
        e = errors[0]
        return _input_error("input", f"{e.file}:{e.line}:{e.column}: {e.message}", code=e.code)
    try:
        data = json.loads(text, parse_float=JsonFloat)
    except json.JSONDecodeError as exc:
        return _input_error("input", f"{args.input}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}")
    except RecursionError:
        return _input_error("input", f"{args.input}: malformed JSON: nested too deeply")
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()   # the edge reads the clock
    except ValueError:
        return _input_error("as_of", f"'{args.as_of}' is not an ISO date (YYYY-MM-DD)")
    try:
        policy = _read_policy(args.policy)
    except OSError as exc:
        return _input_error("policy", f"{args.policy}: {exc.strerror}")
    except PolicyInvalid as exc:
        _print_policy_errors(exc)
        return 1
    try:
        decision = evaluate(policy, data, as_of, order=args.order_amount)
    except InputInvalid as exc:
        print(json.dumps({"code": exc.code, "message": str(exc), "errors": exc.by_field()}, ensure_ascii=False),
              file=sys.stderr)
        return 2
    except EngineFailure as exc:          # fail closed: no decision
        print(json.dumps({"code": exc.code, "message": str(exc), "errors": {}}, ensure_ascii=False), file=sys.stderr)
        return 1
    data = decision.render(args.locale)             # reasons in English (default) or Chinese
    print(canonical_json(data) if args.compact else json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
    return 0


def cmd_demo(args) -> int:
    """Evaluate the bundled example portfolio and print one line per customer."""
    from .evaluator import evaluate
    try:
        policy = _read_policy(args.policy)
    except OSError as exc:
        return _file_error(args.policy, exc)
    except PolicyInvalid as exc:
        _print_policy_errors(exc)
        return 1
    try:
        with open(args.portfolio, encoding="utf-8") as fh:
            book = json.load(fh, parse_float=JsonFloat)
        as_of = dt.date.fromisoformat(args.as_of or book["as_of"])
        cases = list(book["customers"])
    except OSError as exc:
        return _file_error(args.portfolio, exc)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:    # not JSON, not a portfolio, bad date
        print(f"{args.portfolio}: E_INPUT_INVALID: not a portfolio with a date: {exc}", file=sys.stderr)
        return 2
    print(f"policy {policy.name} {policy.version[:12]} · as of {as_of} · {len(cases)} customers")
    failed = 0
    for i, case in enumerate(cases):
        try:
            facts = {k: v for k, v in case.items() if k != "order_amount"}     # the order is not part of the case
            d = evaluate(policy, facts, as_of, order=case.get("order_amount")).data
        except (AttributeError, InputInvalid, EngineFailure) as exc:       # AttributeError: not a mapping
            failed += 1
            print(f"{args.portfolio}: customer {i}: {getattr(exc, 'code', 'E_INPUT_INVALID')}: {exc}", file=sys.stderr)
            continue
        check = d["credit"].get("check", {})
        print(f"{d['customer_id']:<8} {d['classification']['amount_tier']:<6} {d['classification']['aging_bucket']:<7} "
              f"{d['classification']['reputation']:<6} score {d['score']['value']:>3}  limit {d['credit']['limit']:>10}  "
              f"stage {d['dunning']['stage']}  actions {len(d['dunning']['actions'])}  "
              f"check {check.get('outcome', '-')}  alerts {len(d['alerts'])}")
    return 1 if failed else 0


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit 2 (the whole usage is in --help). Subcommands,
    also those api/cli.py adds, are parsers of this class (argparse makes them of their parent's)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="creditctl", description="Credit control and collections rules.")
    sub = parser.add_subparsers(dest="command", required=True)

    policy = sub.add_parser("policy", help="check, test and describe policies").add_subparsers(dest="action",
                                                                                                required=True)
    check = policy.add_parser("check", help="validate a policy file")
    check.add_argument("file", nargs="?", default=DEFAULT_POLICY)
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.set_defaults(func=cmd_policy_check)
    test = policy.add_parser("test", help="run YAML test cases against a policy")
    test.add_argument("file", nargs="?", default=DEFAULT_POLICY)
    test.add_argument("cases", nargs="*", help="case files or folders (default: tests/policy beside the policy)")
    test.add_argument("-v", "--verbose", action="store_true")
    test.set_defaults(func=cmd_policy_test)
    schema = policy.add_parser("schema", help="print the JSON Schema of policies.yaml")
    schema.set_defaults(func=cmd_policy_schema)

    ev = sub.add_parser("evaluate", help="evaluate one customer case (JSON) and print the decision")
    ev.add_argument("--input", required=True)
    ev.add_argument("--policy", default=DEFAULT_POLICY)
    ev.add_argument("--as-of", dest="as_of")
    ev.add_argument("--order-amount", dest="order_amount")
    ev.add_argument("--compact", action="store_true", help="canonical one-line JSON")
    ev.add_argument("--locale", choices=("en", "zh"), default="en", help="the language of the reasons")
    ev.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="evaluate the bundled example portfolio")
    demo.add_argument("--policy", default=DEFAULT_POLICY)
    demo.add_argument("--portfolio", default=os.path.join("examples", "portfolio.json"))
    demo.add_argument("--as-of", dest="as_of")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

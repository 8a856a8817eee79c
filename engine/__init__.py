"""creditctl's pure core: compile a policy, build facts, evaluate. No web, no database."""

from .compiler import CompiledPolicy, compile_file, compile_policy
from .decision import Decision, canonical_json
from .errors import EngineFailure, InputInvalid, PolicyInvalid
from .evaluator import evaluate, evaluate_facts, evaluate_loaded
from .facts import build_facts, load_case

__all__ = [
    "CompiledPolicy",
    "Decision",
    "EngineFailure",
    "InputInvalid",
    "PolicyInvalid",
    "build_facts",
    "canonical_json",
    "compile_file",
    "compile_policy",
    "evaluate",
    "evaluate_facts",
    "evaluate_loaded",
    "load_case",
]

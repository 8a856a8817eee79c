"""The layers of docs/architecture.md, checked on the code: no import cycle anywhere, imports run
one way between the layers, the pure core imports no adapter, and every error code has its row in
the one table (api/codes.py)."""

from __future__ import annotations

import ast
import pathlib
import re

from api.codes import CODES
from engine.errors import EngineFailure, InputInvalid, PolicyInvalid

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "rules", "api")
# api's layers, lowest first: a module may import its own layer and the layers below it
API_LAYERS = (
    ("api.errors", "api.codes"),
    ("api.documents", "api.delivery"),
    ("api.store",),
    ("api.service",),
    ("api.reports",),
    ("api.jobs",),
    ("api.http", "api.console"),
    ("api.cli",),
)
ADAPTER_LIBRARIES = ("flask", "sqlalchemy", "alembic", "gunicorn", "apscheduler", "werkzeug", "psycopg")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """Every module this one imports, at the top or inside a function (a deferred import is still
    a dependency: hiding a cycle in a function does not remove it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule; `from pkg import name`, on pkg
            targets = [t for t in subs if t in known] or [mod]
            if len(targets) < len(subs):
                targets.append(mod)
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _external_imports(path: pathlib.Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(API_LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_the_finder_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others():
    assert _cycles(_graph()) == []


def test_rules_never_import_the_engine_or_the_service():
    """The policy language (rules/) is the lowest layer: engine/ compiles and evaluates it, api/ serves it."""
    wrong = sorted(
        f"{src} → {dst}"
        for src, targets in _graph().items()
        if src.split(".")[0] == "rules"
        for dst in targets
        if dst.split(".")[0] in ("engine", "api")
    )
    assert wrong == []


def test_the_engine_never_imports_the_service():
    wrong = sorted(
        f"{src} → {dst}"
        for src, targets in _graph().items()
        if src.split(".")[0] == "engine"
        for dst in targets
        if dst.split(".")[0] == "api"
    )
    assert wrong == []


def test_api_layers_import_only_downwards():
    wrong = []
    for src, targets in _graph().items():
        rank = _layer(src)
        if rank is None:
            continue
        for dst in targets:
            dst_rank = _layer(dst)
            if dst_rank is not None and dst_rank > rank:
                wrong.append(f"{src} → {dst}")
    assert wrong == []


def test_http_is_the_only_layer_that_knows_flask():
    mods = _modules()
    wrong = [
        name
        for name, path in mods.items()
        if name.startswith("api.")
        and not name.startswith(("api.http", "api.console", "api.cli"))
        and {"flask", "werkzeug"} & _external_imports(path)
    ]
    assert wrong == []


def test_the_pure_core_imports_no_adapter():
    mods = _modules()
    wrong = {
        name: sorted(_external_imports(path) & {*ADAPTER_LIBRARIES, "api"})
        for name, path in mods.items()
        if name.split(".")[0] in ("engine", "rules")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_every_error_code_raised_has_its_row_in_the_table():
    raised = {InputInvalid.code, PolicyInvalid.code, EngineFailure.code}
    pattern = re.compile(r'(?:DomainError|conflict)\((?:[^()]|\([^()]*\))*?"(E_[A-Z_]+)"')
    for path in (ROOT / "api").rglob("*.py"):
        raised |= set(pattern.findall(path.read_text(encoding="utf-8")))
    assert "E_NOT_FOUND" in raised and "E_EVENT_CONFLICT" in raised  # the scan finds what it should
    assert sorted(raised - set(CODES)) == []

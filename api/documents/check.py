"""Static checks of a template folder, for `creditctl policy check`: errors as engine PolicyErrors,
printed `FILE:LINE:COL: CODE: message`.

- E_TEMPLATE_SYNTAX: Jinja cannot parse the file (or names an unknown filter or test).
- E_TEMPLATE_UNKNOWN_VARIABLE: a name that is neither a context field nor set by the template.
- E_TEMPLATE_UNKNOWN_FIELD: `customer.nmae`, `inv.amount` …: an attribute the record does not have,
  followed through `{% for x in invoices %}` loops.
- E_TEMPLATE_MISSING: a locale folder lacks a part a document needs (or the default locale is missing).
- E_TEMPLATE_UNKNOWN_FILE: a template in a locale folder that is no document part (partials start with `_`).
- E_TEMPLATE_RENDER: the template fails on a sample document of its kind (e.g. formats a date that is
  empty for that kind); the line is the template's when Jinja knows it. Checked once the rest is clean.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import sys
import types
import typing

from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes

from engine.errors import PolicyError

from .context import KINDS, TEMPLATE_NAMES, DocumentContext
from .errors import DocumentError
from .money import did_you_mean
from .render import DEFAULT_LOCALE, PARTS, RENDER_GLOBALS, REQUIRED_PARTS, DocumentRenderer, make_environment

_TOP_TYPES = {**typing.get_type_hints(DocumentContext), "locale": str}


def check_templates(folder: str | os.PathLike, default_locale: str = DEFAULT_LOCALE) -> list[PolicyError]:
    """Every problem found in the folder's templates, in file order; [] when it is fine."""
    root = pathlib.Path(folder)
    if not root.is_dir():
        return [PolicyError("E_TEMPLATE_MISSING", "template folder does not exist", file=str(root))]
    env = make_environment(root)
    known = TEMPLATE_NAMES | RENDER_GLOBALS | set(env.globals)
    errors: list[PolicyError] = []
    parsed_ok: set[str] = set()
    for path in sorted(root.rglob("*.j2")):
        name = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8")
        found = _check_source(env, source, name, str(path), known)
        errors += found
        if not found:
            parsed_ok.add(name)
    errors += _check_layout(root, default_locale)
    if not errors:  # a broken partial would fail every document that includes it: fix those first
        errors += _check_samples(root, parsed_ok)
    return errors


def _check_source(env, source: str, name: str, file: str, known: set[str]) -> list[PolicyError]:
    lines = source.splitlines()
    try:
        ast = env.parse(source, name, file)
        env.compile(ast, name, file)  # unknown filters and tests are found here, not by parse
    except TemplateSyntaxError as exc:  # TemplateAssertionError (unknown filter, test) included
        return [PolicyError("E_TEMPLATE_SYNTAX", exc.message or str(exc), file=file, line=exc.lineno or 0, column=1)]
    errors = []
    unknown = meta.find_undeclared_variables(ast) - known
    seen = set()
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load" and node.name in unknown and (node.name, node.lineno) not in seen:
            seen.add((node.name, node.lineno))
            errors.append(
                PolicyError(
                    "E_TEMPLATE_UNKNOWN_VARIABLE",
                    f"unknown variable '{node.name}'{did_you_mean(node.name, known - set(env.globals))}",
                    file=file,
                    line=node.lineno,
                    column=_column(lines, node.lineno, rf"\b{re.escape(node.name)}\b"),
                )
            )
    errors += _FieldChecker(file, lines, _assigned_names(ast)).run(ast)
    errors.sort(key=lambda e: (e.line, e.column))
    return errors


def _column(lines: list[str], lineno: int, pattern: str) -> int:
    if 0 < lineno <= len(lines) and (m := re.search(pattern, lines[lineno - 1])):
        return m.start() + 1
    return 1


def _assigned_names(ast) -> set[str]:
    """Names the template binds itself ({% set %}, {% with %}, macro and call arguments, imports):
    attributes of those are not checked."""
    names = set()
    for node in ast.find_all((nodes.Assign, nodes.AssignBlock, nodes.With)):
        targets = [node.target] if not isinstance(node, nodes.With) else node.targets
        for target in targets:
            names |= {n.name for n in target.find_all(nodes.Name)} | (
                {target.name} if isinstance(target, nodes.Name) else set()
            )
    for node in ast.find_all((nodes.Macro, nodes.CallBlock)):
        names |= {a.name for a in node.args}
    for node in ast.find_all((nodes.Import, nodes.FromImport)):
        names |= (
            {node.target} if isinstance(node, nodes.Import) else {n if isinstance(n, str) else n[1] for n in node.names}
        )
    return names


def _unwrap(tp):
    """X | None → X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return tp


def _element(tp):
    """tuple[X, ...] → X; None when not a typed sequence."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        return args[0] if args else None
    return None


def _record_attributes(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} | {n for n in dir(cls) if not n.startswith("_")}


class _FieldChecker:
    """Follows record types through attribute access and for-loops; unknown types are not checked."""

    def __init__(self, file: str, lines: list[str], assigned: set[str]):
        self.file, self.lines, self.assigned = file, lines, assigned
        self.errors: dict[tuple, PolicyError] = {}

    def run(self, ast) -> list[PolicyError]:
        self._visit(ast, {})
        return list(self.errors.values())

    def _type_of(self, node, scope: dict):
        if isinstance(node, nodes.Name):
            if node.name in scope:
                return scope[node.name]
            if node.name in self.assigned:
                return None
            return _TOP_TYPES.get(node.name)
        if isinstance(node, nodes.Getattr):
            base = _unwrap(self._type_of(node.node, scope))
            if base is None or not dataclasses.is_dataclass(base):
                return None
            if node.attr not in _record_attributes(base):
                path = self._path(node)
                self.errors.setdefault(
                    (node.lineno, path),
                    PolicyError(
                        "E_TEMPLATE_UNKNOWN_FIELD",
                        f"'{path}': {base.__name__} has no field '{node.attr}'"
                        f"{did_you_mean(node.attr, _record_attributes(base))}",
                        file=self.file,
                        line=node.lineno,
                        column=_column(self.lines, node.lineno, rf"\.\s*{re.escape(node.attr)}\b") + 1,
                    ),
                )
                return None
            hints = typing.get_type_hints(base)
            return hints.get(node.attr)
        return None

    def _path(self, node) -> str:
        if isinstance(node, nodes.Getattr):
            return f"{self._path(node.node)}.{node.attr}"
        return node.name if isinstance(node, nodes.Name) else "…"

    def _visit(self, node, scope: dict):
        if isinstance(node, nodes.For):
            self._visit(node.iter, scope)
            inner = dict(scope, loop=None)
            element = _element(self._type_of(node.iter, scope))
            for name in node.target.find_all(nodes.Name) if not isinstance(node.target, nodes.Name) else [node.target]:
                inner[name.name] = element if isinstance(node.target, nodes.Name) else None
            for child in [*([node.test] if node.test else []), *node.body]:
                self._visit(child, inner)
            for child in node.else_:
                self._visit(child, scope)
            return
        if isinstance(node, (nodes.Macro, nodes.CallBlock)):
            inner = dict(scope, **{a.name: None for a in node.args})
            for child in node.iter_child_nodes():
                self._visit(child, inner)
            return
        if isinstance(node, nodes.Getattr):
            self._type_of(node, scope)
        for child in node.iter_child_nodes():
            self._visit(child, scope)


def _check_layout(root: pathlib.Path, default_locale: str) -> list[PolicyError]:
    errors = []
    locales = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    if default_locale not in locales:
        errors.append(
            PolicyError("E_TEMPLATE_MISSING", f"no folder for the default locale '{default_locale}'", file=str(root))
        )
    wanted = {f"{kind}{PARTS[part]}" for kind in KINDS for part in REQUIRED_PARTS[kind]}
    optional = {f"{kind}{suffix}" for kind in KINDS for suffix in PARTS.values()}
    for loc in locales:
        present = {p.name for p in (root / loc).iterdir() if p.is_file() and p.name.endswith(".j2")}
        for name in sorted(wanted - present):
            errors.append(
                PolicyError(
                    "E_TEMPLATE_MISSING",
                    f"locale '{loc}' has no '{name}'{did_you_mean(name, present - optional)}",
                    file=str(root / loc),
                )
            )
        for name in sorted(present - optional):
            if not name.startswith("_"):
                errors.append(
                    PolicyError(
                        "E_TEMPLATE_UNKNOWN_FILE",
                        f"'{name}' is no document part (partials start with '_'){did_you_mean(name, wanted - present)}",
                        file=str(root / loc / name),
                        line=1,
                        column=1,
                    )
                )
    return errors


def _check_samples(root: pathlib.Path, parsed_ok: set[str]) -> list[PolicyError]:
    """Render each kind's parts on a sample document: finds what only shows at render time."""
    from .samples import sample_context

    renderer = DocumentRenderer(root)
    errors = []
    locales = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    for loc in locales:
        for kind in KINDS:
            context = sample_context(kind)
            values = {**context.template_vars(), "locale": loc}
            for suffix in PARTS.values():
                name = f"{loc}/{kind}{suffix}"
                if name not in parsed_ok:  # missing or already reported
                    continue
                try:
                    renderer.env.get_template(name).render(values)
                except (TemplateError, DocumentError) as exc:
                    file, line = _template_frame(exc, root)
                    errors.append(
                        PolicyError(
                            "E_TEMPLATE_RENDER",
                            f"fails on a sample {kind}: {exc}",
                            file=file or str(root / name),
                            line=line,
                            column=1 if line else 0,
                        )
                    )
    return errors


def _template_frame(exc: BaseException, root: pathlib.Path) -> tuple[str | None, int]:
    """The innermost traceback frame in a template file (Jinja rewrites them to template lines)."""
    file, line = None, 0
    tb = exc.__traceback__
    resolved = root.resolve()
    while tb is not None:
        path = pathlib.Path(tb.tb_frame.f_code.co_filename)
        if path.suffix == ".j2" and path.is_relative_to(resolved):
            file, line = str(root / path.relative_to(resolved)), tb.tb_lineno
        tb = tb.tb_next
    return file, line


def main(argv: list[str] | None = None) -> int:
    """`python -m api.documents [FOLDER]`: print each problem, exit 1 when there is one."""
    argv = sys.argv[1:] if argv is None else argv
    problems = check_templates(argv[0] if argv else "templates")
    for p in problems:
        print(p.format())
    return 1 if problems else 0

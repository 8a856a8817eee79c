"""Safe YAML loading that remembers where every value came from.

Floats are read as exact Decimals from their literal text, duplicate keys are errors,
and `positions` maps each YAML path (tuple of keys / indices) to (line, column), 1-based.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import yaml

from .errors import PolicyError


class _ExactLoader(yaml.SafeLoader):
    """PyYAML's pure-Python loader: the reference, and the one that reports syntax errors."""


# libyaml (when this PyYAML has it) composes a policy ~10× faster, and its nodes carry the same
# line/column marks; tags are resolved by the same Python resolver and values built by the same
# constructors. Its error messages differ, so any error is reported by parsing again with
# _ExactLoader: a broken file gets exactly the message and position it always got.
# libyaml also accepts a few things the pure-Python scanner refuses or reads differently (found by
# fuzzing the shipped policy): '?' inside a flow-style plain scalar, '#' right after a block scalar
# header, a bare '!' tag, %-directives, tabs, BOMs and unusual line breaks, and it places an empty
# value at the very end of a text without a final newline elsewhere. Text with any of these (and
# text with characters the pure reader refuses) is left to _ExactLoader.
_LIBYAML_DIFFERS = re.compile(r"[\t\r\x85\ufeff\u2028\u2029!?]|[|>][-+0-9]*#|^%", re.M)
if yaml.__with_libyaml__:
    class _FastExactLoader(yaml.CSafeLoader):
        pass
else:
    _FastExactLoader = None


def _construct_decimal(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite number", node.start_mark)
    return value


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
if _FastExactLoader is not None:
    _FastExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


@dataclass(frozen=True)
class LoadedYaml:
    data: object
    positions: dict
    file: str

    def locate(self, path: tuple) -> tuple[int, int]:
        """Position of the deepest existing prefix of `path` (a missing key points at its parent)."""
        for cut in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:cut]))
            if pos:
                return pos
        return (1, 1)

    def error(self, code: str, message: str, path: tuple) -> PolicyError:
        line, col = self.locate(path)
        return PolicyError(code, message, format_path(path), self.file, line, col)


def format_path(path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _walk(node, path, positions, errors, file, mark=None):
    mark = mark or node.start_mark      # a mapping entry is located at its key
    positions[path] = (mark.line + 1, mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                errors.append(PolicyError(
                    "E_YAML_DUPLICATE_KEY", f"key '{key}' appears twice in this mapping",
                    format_path(path + (key,)), file,
                    key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            seen.add(key)
            _walk(value_node, path + (key,), positions, errors, file, key_node.start_mark)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), positions, errors, file)


def _compose_and_construct(loader_class, text: str):
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def load_yaml(text: str, file: str = "<policy>") -> tuple[LoadedYaml | None, list[PolicyError]]:
    try:
        parsed = None
        if (_FastExactLoader is not None and isinstance(text, str) and text.endswith("\n")
                and not _LIBYAML_DIFFERS.search(text) and not yaml.reader.Reader.NON_PRINTABLE.search(text)):
            try:
                parsed = _compose_and_construct(_FastExactLoader, text)
            except yaml.YAMLError:
                parsed = None          # reported below, by the reference loader
        node, data = parsed if parsed is not None else _compose_and_construct(_ExactLoader, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return None, [PolicyError("E_YAML_SYNTAX", f"{exc.problem or exc}", "", file, line, col)]
    except yaml.YAMLError as exc:
        return None, [PolicyError("E_YAML_SYNTAX", str(exc), "", file, 0, 0)]
    positions: dict = {}
    errors: list[PolicyError] = []
    if node is not None:
        _walk(node, (), positions, errors, file)
    return LoadedYaml(data, positions, file), errors

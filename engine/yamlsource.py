"""Safe YAML loading that remembers where every value came from.

Floats are read as exact Decimals from their literal text, duplicate keys are errors,
and `positions` maps each YAML path (tuple of keys / indices) to (line, column), 1-based.

The text is untrusted (the API accepts policies from any controller), so what it may cost is
bounded before and while it is parsed (docs/policy-language.md#limits):

    MAX_TEXT_BYTES     1 MiB of UTF-8                      E_POLICY_TOO_LARGE
    MAX_DEPTH          32 nested mappings / lists           E_YAML_DEPTH
    MAX_ALIASES        100 aliases (*name)                  E_YAML_ALIAS
    MAX_ALIAS_NODES    10,000 nodes added by expanding them E_YAML_ALIAS

Bytes must be UTF-8 (a UTF-8 byte order mark is allowed); UTF-16/32, invalid UTF-8 and
characters YAML does not allow (NUL, other control characters) are E_ENCODING, each at its
line and column.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, SequenceNode
from yaml.resolver import Resolver

from .errors import PolicyError

MAX_TEXT_BYTES = 1 << 20
MAX_DEPTH = 32
# A "billion laughs" text of a few hundred bytes nests aliases of aliases; both caps stop it at
# the alias that crosses them, before anything walks the expanded tree.
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000


class _Refused(yaml.MarkedYAMLError):
    """A bound of this module was crossed at problem_mark."""

    def __init__(self, code: str, message: str, mark):
        super().__init__(problem=message, problem_mark=mark)
        self.code = code


class _Bounded(Composer):
    """Python's composer with the depth and alias bounds. Nodes carry their expanded size (nodes
    in their subtree with every alias expanded), so an alias costs what expanding it would."""

    def __init__(self):
        Composer.__init__(self)
        self._depth = 0
        self._aliases = 0
        self._alias_nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._count_alias(event, target)
            return Composer.compose_node(self, parent, index)  # also refuses an undefined alias
        collection = isinstance(event, (SequenceStartEvent, MappingStartEvent))
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    "E_YAML_DEPTH", f"more than {MAX_DEPTH} levels of nested mappings and lists", event.start_mark
                )
        node = Composer.compose_node(self, parent, index)
        if collection:
            self._depth -= 1
            if isinstance(node, SequenceNode):
                node.expanded = 1 + sum(child.expanded for child in node.value)
            else:
                node.expanded = 1 + sum(k.expanded + v.expanded for k, v in node.value)
        else:
            node.expanded = 1
        return node

    def _count_alias(self, event, target):
        size = getattr(target, "expanded", None)
        if size is None:  # the anchored collection is still open: the alias is inside it
            raise _Refused(
                "E_YAML_ALIAS", f"alias '*{event.anchor}' refers to a node that contains it", event.start_mark
            )
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _Refused("E_YAML_ALIAS", f"more than {MAX_ALIASES} aliases", event.start_mark)
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _Refused(
                "E_YAML_ALIAS",
                f"alias '*{event.anchor}' expands the text by {self._alias_nodes:,} nodes "
                f"in all; aliases may add at most {MAX_ALIAS_NODES:,}",
                event.start_mark,
            )


class _Constructor(SafeConstructor):
    def construct_object(self, node, deep=False):
        try:
            return SafeConstructor.construct_object(self, node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # noqa: BLE001 — any value PyYAML fails on (int of 5,000 digits, 2026-02-30)
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from None


def _construct_decimal(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a finite number", node.start_mark)
    return value


class _ExactLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Bounded, _Constructor, Resolver):
    """PyYAML's pure-Python loader (SafeLoader's parts): the reference, and the one that reports
    syntax errors."""

    def __init__(self, stream):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Bounded.__init__(self)
        _Constructor.__init__(self)
        Resolver.__init__(self)


# libyaml (when this PyYAML has it) scans and parses a policy ~10× faster than pure Python; its
# events go to the same Python composer (the bounds above; libyaml's own composer recurses in C and
# crashes on deep nesting), tags are resolved by the same Python resolver and values built by the
# same constructors. Its error messages differ, so a syntax error is reported by parsing again with
# _ExactLoader: a broken file gets exactly the message and position it always got. (A crossed bound
# is reported at once: the composer that found it is the same in both loaders.)
# libyaml also accepts a few things the pure-Python scanner refuses or reads differently (found by
# fuzzing the shipped policy): '?' inside a flow-style plain scalar, '#' right after a block scalar
# header, a bare '!' tag, %-directives, tabs, BOMs and unusual line breaks, and it places an empty
# value at the very end of a text without a final newline elsewhere. Text with any of these is left
# to _ExactLoader.
_LIBYAML_DIFFERS = re.compile(r"[\t\r\x85\ufeff\u2028\u2029!?]|[|>][-+0-9]*#|^%", re.M)
if yaml.__with_libyaml__:

    class _FastExactLoader(_Bounded, yaml._yaml.CParser, _Constructor, Resolver):
        # _Bounded (a Composer) comes first: its get_single_node & co. replace CParser's C composer
        def __init__(self, stream):
            yaml._yaml.CParser.__init__(self, stream)
            _Bounded.__init__(self)
            _Constructor.__init__(self)
            Resolver.__init__(self)
else:
    _FastExactLoader = None

_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
if _FastExactLoader is not None:
    _FastExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


@dataclass(frozen=True)
class LoadedYaml:
    data: object
    positions: dict
    file: str
    text: str = ""  # what was parsed (the decoded text)

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
    mark = mark or node.start_mark  # a mapping entry is located at its key
    positions[path] = (mark.line + 1, mark.column + 1)
    if isinstance(node, MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if isinstance(key, str):  # a collection as a key is refused by the constructor
                if key in seen:
                    errors.append(
                        PolicyError(
                            "E_YAML_DUPLICATE_KEY",
                            f"key '{key}' appears twice in this mapping",
                            format_path(path + (key,)),
                            file,
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                        )
                    )
                seen.add(key)
            _walk(value_node, path + (key,), positions, errors, file, key_node.start_mark)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), positions, errors, file)


def _compose_and_construct(loader_class, text: str):
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.MarkedYAMLError as exc:
        _name_open_flow_collection(exc, loader, text)
        raise
    finally:
        loader.dispose()


def _name_open_flow_collection(exc, loader, text: str) -> None:
    """'while parsing a flow node' names the place a value was expected (often the end of the
    text); the '[' or '{' left open is the innermost collection mark of the pure-Python parser."""
    marks = getattr(loader, "marks", None)
    if exc.context != "while parsing a flow node" or not marks:
        return
    opened = text[marks[-1].index : marks[-1].index + 1]
    if opened in ("[", "{"):
        exc.context = "while parsing a flow " + ("sequence" if opened == "[" else "mapping")
        exc.context_mark = marks[-1]


# ---------------------------------------------------------------- text: size and encoding
def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of text[index], counted as PyYAML's reader counts them."""
    line, start = 1, 0
    for m in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1 - text.count("\ufeff", start, index)


_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")
_UTF16_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _too_large(file: str, data: bytes) -> PolicyError:
    head = data[:MAX_TEXT_BYTES].decode("utf-8", "ignore")
    line, col = line_col(head, len(head))
    return PolicyError(
        "E_POLICY_TOO_LARGE",
        f"the text is larger than {MAX_TEXT_BYTES:,} bytes (1 MiB), the limit for a policy; it goes past it here",
        "",
        file,
        line,
        col,
    )


def decode_text(text: bytes | str, file: str, *, yaml_text: bool = True) -> tuple[str | None, list[PolicyError]]:
    """The text to parse, or None and the E_POLICY_TOO_LARGE / E_ENCODING error (with its position).
    yaml_text=False (a JSON case file): only the encoding is checked, not the size nor YAML's characters."""
    if isinstance(text, str):
        if yaml_text and len(text) > MAX_TEXT_BYTES // 4:  # only then can its UTF-8 exceed the limit
            data = text.encode("utf-8", "surrogatepass")
            if len(data) > MAX_TEXT_BYTES:
                return None, [_too_large(file, data)]
    else:
        data = bytes(text)
        if yaml_text and len(data) > MAX_TEXT_BYTES:
            return None, [_too_large(file, data)]
        for bom, name in _UTF16_BOMS:
            if data.startswith(bom):
                return None, [
                    PolicyError(
                        "E_ENCODING",
                        f"the file is {name} (it starts with the byte order mark "
                        f"{bom.hex(' ').upper()}); save it as UTF-8",
                        "",
                        file,
                        1,
                        1,
                    )
                ]
        if len(data) >= 2 and (data[0] == 0) != (data[1] == 0):
            order = "big" if data[0] == 0 else "little"
            return None, [
                PolicyError(
                    "E_ENCODING",
                    f"the file looks like UTF-16 ({order}-endian, without a byte "
                    "order mark): it has NUL bytes between its characters; save it as UTF-8",
                    "",
                    file,
                    1,
                    1,
                )
            ]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            head = data[: exc.start].decode("utf-8")
            line, col = line_col(head, len(head))
            return None, [
                PolicyError(
                    "E_ENCODING",
                    f"byte 0x{data[exc.start]:02X} is not UTF-8 ({exc.reason}); save the file as UTF-8",
                    "",
                    file,
                    line,
                    col,
                )
            ]
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text) if yaml_text else None
    if bad:
        ch = bad.group()
        what = (
            "a NUL character (is the file UTF-16?)"
            if ch == "\0"
            else (f"the character U+{ord(ch):04X}, which YAML does not allow")
        )
        line, col = line_col(text, bad.start())
        return None, [PolicyError("E_ENCODING", f"the text contains {what}", "", file, line, col)]
    return text, []


# ---------------------------------------------------------------- load
# Where the parser notices a mistake is often not where it is: an unclosed '[' or quote is only
# found lines later. For these constructs the error is placed where the construct began, and the
# message says where it was noticed. A block mapping or list "begins" at its first key, possibly the
# top of the file, while its mistakes are where they are noticed: those keep that place.
_BEGINS_AT_CONTEXT = ("while scanning", "while parsing a flow sequence", "while parsing a flow mapping")


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> PolicyError:
    code = getattr(exc, "code", "E_YAML_SYNTAX")
    problem, context = exc.problem or str(exc), exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    message = problem
    if (
        exc.context_mark is not None
        and exc.problem_mark is not None
        and context.startswith(_BEGINS_AT_CONTEXT)
        and (exc.context_mark.line, exc.context_mark.column) != (exc.problem_mark.line, exc.problem_mark.column)
    ):
        message = (
            f"{context} that begins here: {problem} (noticed at line {exc.problem_mark.line + 1}, column "
            f"{exc.problem_mark.column + 1})"
        )
        mark = exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    return PolicyError(code, message, "", file, line, col)


def load_yaml(text: bytes | str, file: str = "<policy>") -> tuple[LoadedYaml | None, list[PolicyError]]:
    text, errors = decode_text(text, file)
    if errors:
        return None, errors
    try:
        parsed = None
        if _FastExactLoader is not None and text.endswith("\n") and not _LIBYAML_DIFFERS.search(text):
            try:
                parsed = _compose_and_construct(_FastExactLoader, text)
            except _Refused:
                raise  # a bound: the same events reach the same composer in both loaders
            except yaml.YAMLError:
                parsed = None  # reported below, by the reference loader
        node, data = parsed if parsed is not None else _compose_and_construct(_ExactLoader, text)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_error(exc, file)]
    except yaml.YAMLError as exc:
        return None, [PolicyError("E_YAML_SYNTAX", str(exc), "", file, 0, 0)]
    positions: dict = {}
    errors = []
    if node is not None:
        _walk(node, (), positions, errors, file)
    return LoadedYaml(data, positions, file, text), errors


def read_text_file(path: str) -> bytes:
    """A file's bytes for decode_text: at most MAX_TEXT_BYTES + 1, enough to refuse a larger one
    without reading it all. OSError when it cannot be read (missing, a folder, no permission)."""
    with open(path, "rb") as fh:
        return fh.read(MAX_TEXT_BYTES + 1)

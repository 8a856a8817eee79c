"""Render the fact dictionary table of docs/policy-language.md from rules/fields.py.

    python docs/gen_fields.py           rewrite the table between the markers in place
    python docs/gen_fields.py --check   exit 1 (and change nothing) when the table is out of date

The table sits between `<!-- fields:start -->` and `<!-- fields:end -->`; everything
outside the markers is hand-written and left alone. tests/test_docs.py fails when the
table in the file differs from what `render_table()` produces.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rules.fields import FIELDS  # noqa: E402  (needs ROOT on sys.path)

DOC = ROOT / "docs" / "policy-language.md"
START, END = "<!-- fields:start -->", "<!-- fields:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _meaning(spec) -> str:
    parts = [spec.doc]
    if spec.enum_source:
        parts.append(f"values: `{spec.enum_source}`")
    if not spec.nonnegative:
        parts.append("may be negative")
    return "; ".join(parts)


def render_table(fields=None) -> str:
    """The markdown table, one row per fact field, in rules/fields.py order."""
    fields = FIELDS if fields is None else fields
    lines = ["| Field | Kind | Stage | Meaning |", "|---|---|---|---|"]
    for name, spec in fields.items():
        lines.append(f"| `{name}` | {spec.kind} | {spec.stage} | {_cell(_meaning(spec))} |")
    return "\n".join(lines)


def splice(doc_text: str, table: str) -> str:
    """doc_text with the part between the markers replaced by the table."""
    if doc_text.count(START) != 1 or doc_text.count(END) != 1:
        raise ValueError(f"the document must contain {START} and {END} exactly once each")
    head, rest = doc_text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    current = DOC.read_text(encoding="utf-8")
    wanted = splice(current, render_table())
    if "--check" in argv:
        if current != wanted:
            print(f"{DOC}: the fact dictionary is out of date; run python docs/gen_fields.py", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        DOC.write_text(wanted, encoding="utf-8")
        print(f"{DOC}: fact dictionary updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

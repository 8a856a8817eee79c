"""A policy text is untrusted: its size, nesting and aliases are bounded, it must be UTF-8, numbers
in it are bounded, and a YAML mistake is placed where the construct it breaks began. Each refusal
is a coded PolicyError at a line and column; texts that could hang or crash the process go through
a separate compile process (tests/compile_worker.py) that fails the test instead."""

from __future__ import annotations

import pytest

from engine import PolicyInvalid, compile_policy, yamlsource
from engine.yamlsource import MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH, MAX_TEXT_BYTES, load_yaml

from compile_worker import CompileWorker
from helpers import compiled, edit, only_error, position


@pytest.fixture(scope="module")
def worker():
    with CompileWorker() as w:
        yield w


def worker_error(worker, text):
    answer = worker.compile(text)
    assert answer["outcome"] == "invalid", answer
    assert len(answer["errors"]) == 1, answer["errors"]
    return answer["errors"][0]


def billion_laughs(levels: int = 9) -> str:
    """~400 bytes: each level is a list of nine aliases of the level before (9^9 nodes expanded)."""
    lines = ["lol0: &l0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def both_loaders(monkeypatch, text, file="f.yaml"):
    """load_yaml's errors with libyaml's events and with the pure-Python parser alone."""
    fast = load_yaml(text, file)[1]
    monkeypatch.setattr(yamlsource, "_FastExactLoader", None)
    pure = load_yaml(text, file)[1]
    monkeypatch.undo()
    return fast, pure


# ---------------------------------------------------------------- aliases
def test_a_billion_laughs_text_is_refused_at_the_alias_that_crosses_the_cap(worker):
    bomb = billion_laughs()
    assert len(bomb.encode()) < 450
    error = worker_error(worker, bomb)
    assert error["code"] == "E_YAML_ALIAS"
    # aliases of lol0…lol2 add 9·10 + 9·91 + 9·820 = 8,289 nodes; the first of lol4 adds 7,381 more
    assert (error["line"], error["column"]) == position(bomb, "*l3")
    assert f"aliases may add at most {MAX_ALIAS_NODES:,}" in error["message"]


def test_a_billion_laughs_inside_the_shipped_policy_is_refused_with_its_line(worker, policy_text):
    text = policy_text.replace("interest:  ", billion_laughs().replace("lol", "x_lol") + "interest:  ", 1)
    error = worker_error(worker, text)
    assert (error["code"], error["line"]) == ("E_YAML_ALIAS", position(text, "*l3")[0])


def test_more_aliases_than_the_cap_are_refused_at_the_first_one_too_many():
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 5)) + "]\n"
    error = only_error(text)
    assert (error.code, error.line) == ("E_YAML_ALIAS", 2)
    assert error.column == len("b: [") + MAX_ALIASES * len("*a, ") + 1  # the 101st alias
    assert error.message == f"more than {MAX_ALIASES} aliases"


def test_an_alias_inside_the_node_it_names_is_refused():
    error = only_error("a: &a [1, *a]\n")
    assert (error.code, error.line, error.column) == ("E_YAML_ALIAS", 1, 11)
    assert "refers to a node that contains it" in error.message


def test_aliases_within_the_caps_still_work(policy, policy_text):
    # the same condition written once and used twice: an ordinary use of anchors
    text = edit(
        policy_text,
        "when: {field: reputation, eq: high}\n      limit",
        "when: &high {field: reputation, eq: high}\n      limit",
    )
    text = edit(text, "when: {field: reputation, eq: high}\n    every_months", "when: *high\n    every_months")
    with compiled(text) as variant:
        assert variant.version == policy.version


def test_the_fast_and_the_pure_loader_refuse_aliases_alike(monkeypatch):
    for text in (billion_laughs(), "a: &a [1, *a]\n", "a: &a x\nb: [" + ", ".join(["*a"] * 120) + "]\n"):
        fast, pure = both_loaders(monkeypatch, text)
        assert fast == pure and fast[0].code == "E_YAML_ALIAS"


# ---------------------------------------------------------------- nesting
def test_10_kb_of_nested_flow_lists_is_a_depth_error_at_the_first_level_too_many(worker):
    text = "policy: " + "[" * 5000 + "]" * 5000 + "\n"
    error = worker_error(worker, text)
    assert error["code"] == "E_YAML_DEPTH"
    # the top-level mapping is level 1, so the 32nd '[' is the 33rd level
    assert (error["line"], error["column"]) == (1, len("policy: ") + MAX_DEPTH)
    assert error["message"] == f"more than {MAX_DEPTH} levels of nested mappings and lists"


@pytest.mark.parametrize(
    "deep",
    [
        "a:\n" + "- " * 3000 + "x\n",  # block lists on one line
        "".join(" " * i + f"k{i}:\n" for i in range(40)) + " " * 40 + "x: 1\n",  # block mappings
        "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",  # flow mappings
    ],
    ids=["block-lists", "block-mappings", "flow-mappings"],
)
def test_every_kind_of_deep_nesting_is_a_depth_error(worker, deep):
    assert worker_error(worker, deep)["code"] == "E_YAML_DEPTH"


def test_32_levels_are_allowed_and_33_are_not():
    def nested(levels):  # the top-level mapping and levels - 1 lists
        return "a: " + "[" * (levels - 1) + "1" + "]" * (levels - 1) + "\n"

    loaded, errors = load_yaml(nested(MAX_DEPTH), "f.yaml")
    assert errors == [] and loaded.positions
    assert [e.code for e in load_yaml(nested(MAX_DEPTH + 1), "f.yaml")[1]] == ["E_YAML_DEPTH"]


def test_a_condition_nested_within_the_limit_compiles(policy_text):
    deep = "{field: score_drop, gte: 10}"
    for _ in range(20):
        deep = "{not: " + deep + "}"  # 20 levels of `not`: an even number, so still score_drop ≥ 10
    with compiled(edit(policy_text, "{field: score_drop, gte: 10}", deep)) as variant:
        assert variant.rules_by_id["alert.score_drop"].condition == ("cmp", "score_drop", "gte", 10, False)


def test_the_fast_and_the_pure_loader_refuse_deep_nesting_alike(monkeypatch):
    fast, pure = both_loaders(monkeypatch, "a: " + "[" * 100 + "]" * 100 + "\n")
    assert fast == pure and fast[0].code == "E_YAML_DEPTH"


# ---------------------------------------------------------------- size
def test_a_text_over_1_mib_is_refused_where_it_crosses_the_limit(policy_text):
    filler = "# " + "x" * 97 + "\n"  # 100-byte comment lines
    text = policy_text + filler * ((MAX_TEXT_BYTES - len(policy_text.encode())) // 100 + 1)
    assert len(text.encode()) > MAX_TEXT_BYTES
    error = only_error(text.encode("utf-8"))
    assert error.code == "E_POLICY_TOO_LARGE"
    head = text.encode()[:MAX_TEXT_BYTES].decode()
    assert (error.line, error.column) == (head.count("\n") + 1, len(head) - head.rfind("\n"))


def test_a_text_of_exactly_1_mib_compiles(policy, policy_text):
    text = policy_text + "#" * (MAX_TEXT_BYTES - len(policy_text.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_TEXT_BYTES
    with compiled(text.encode()) as variant:
        assert variant.version == policy.version


def test_the_limit_counts_utf8_bytes_not_characters(policy_text):
    comment = "# " + "信" * ((MAX_TEXT_BYTES // 3) + 10) + "\n"  # fewer characters than bytes allowed
    assert len(comment) < MAX_TEXT_BYTES < len(comment.encode())
    assert only_error(policy_text + comment).code == "E_POLICY_TOO_LARGE"


# ---------------------------------------------------------------- encoding
@pytest.mark.parametrize(
    "encoding, message",
    [
        ("utf-16", "the file is UTF-16 (it starts with the byte order mark FF FE); save it as UTF-8"),
        ("utf-16-le", "the file looks like UTF-16 (little-endian, without a byte order mark)"),
        ("utf-16-be", "the file looks like UTF-16 (big-endian, without a byte order mark)"),
        ("utf-32", "the file is UTF-32"),
    ],
)
def test_a_utf16_or_utf32_file_is_an_encoding_error_at_its_start(policy_text, encoding, message):
    error = only_error(policy_text.encode(encoding), "p.yaml")
    assert (error.code, error.file, error.line, error.column) == ("E_ENCODING", "p.yaml", 1, 1)
    assert error.message.startswith(message)


def test_invalid_utf8_is_an_encoding_error_at_the_bad_byte(policy_text):
    text = edit(policy_text, "  name: default", "  name: défault")
    data = text.encode("utf-8").replace("é".encode(), b"\xe9")  # Latin-1 é
    error = only_error(data)
    assert error.code == "E_ENCODING"
    assert (error.line, error.column) == position(text, "éfault")
    assert error.message == "byte 0xE9 is not UTF-8 (invalid continuation byte); save the file as UTF-8"


def test_the_column_of_an_encoding_error_counts_characters_not_bytes(policy_text):
    text = edit(policy_text, "  description: 默认信用与催收政策", "  description: 默认信用与催收政策 \x00")
    error = only_error(text.encode())
    assert (error.code, error.line, error.column) == ("E_ENCODING",) + position(text, "\x00")


@pytest.mark.parametrize(
    "char, words",
    [
        ("\x00", "a NUL character (is the file UTF-16?)"),
        ("\x07", "the character U+0007, which YAML does not allow"),
        ("\ud800", "the character U+D800, which YAML does not allow"),
    ],
)
def test_a_character_yaml_does_not_allow_is_an_encoding_error_at_its_position(policy_text, char, words):
    text = edit(policy_text, "  currency: CNY", f"  currency: C{char}NY")
    error = only_error(text)  # as text (str), as the API passes it
    assert (error.code, error.line, error.column) == ("E_ENCODING",) + position(text, char)
    assert error.message == f"the text contains {words}"


def test_a_utf8_byte_order_mark_is_fine(policy, policy_text):
    with compiled(b"\xef\xbb\xbf" + policy_text.encode()) as variant:
        assert variant.version == policy.version
        assert variant.text == "\ufeff" + policy_text


def test_bytes_and_text_of_the_same_policy_compile_alike(policy, policy_text):
    with compiled(policy_text.encode("utf-8")) as variant:
        assert (variant.version, variant.text) == (policy.version, policy_text)


# ---------------------------------------------------------------- syntax errors: where the construct began
def test_an_unclosed_bracket_is_reported_where_it_opens(policy_text):
    text = edit(policy_text, "  customer_type: [individual, enterprise]", "  customer_type: [individual, enterprise")
    error = only_error(text)
    assert error.code == "E_YAML_SYNTAX"
    assert (error.line, error.column) == position(text, "[individual")
    noticed = position(text, "industry:")  # the next key is where the parser notices
    assert error.message.startswith("while parsing a flow sequence that begins here: expected ',' or ']'")
    assert error.message.endswith(f"(noticed at line {noticed[0]}, column {noticed[1]})")


def test_an_unclosed_bracket_at_the_end_of_the_text_is_reported_where_it_opens():
    error = only_error("policy:\n  name: x\nsegments: [{id: a,\n")
    assert (error.code, error.line, error.column) == ("E_YAML_SYNTAX", 3, 12)
    assert error.message.startswith("while parsing a flow mapping that begins here:")
    assert error.message.endswith("(noticed at line 4, column 1)")


def test_an_unclosed_quote_is_reported_where_it_opens(policy_text):
    # the last quoted string of the file, its closing quote dropped: the scalar runs to the end of the text
    last = max(i for i, line in enumerate(policy_text.splitlines(True)) if line.rstrip().endswith('"'))
    lines = policy_text.splitlines(True)
    opening = lines[last].index('"')
    lines[last] = lines[last].rstrip()[:-1] + "\n"
    text = "".join(lines)
    error = only_error(text)
    assert (error.code, error.line, error.column) == ("E_YAML_SYNTAX", last + 1, opening + 1)
    assert error.message == (
        "while scanning a quoted scalar that begins here: found unexpected end of stream "
        f"(noticed at line {text.count(chr(10)) + 1}, column 1)"
    )


def test_a_bad_indentation_is_still_reported_where_it_is(policy_text):
    # a block mapping "begins" at the top of the file; its mistakes are where they are noticed
    text = edit(policy_text, "  currency: CNY\n", "  currency: CNY\n description: x\n")
    error = only_error(text)
    assert (error.code, error.line) == ("E_YAML_SYNTAX", position(text, " description: x")[0])
    assert "noticed at" not in error.message


def test_an_impossible_date_or_a_huge_integer_is_a_syntax_error_at_the_value(policy_text):
    text = edit(policy_text, "  grace_days: 5", "  grace_days: 2026-02-30")
    error = only_error(text)
    assert (error.code, error.line, error.column) == ("E_YAML_SYNTAX",) + position(text, "2026-02-30")
    assert error.message == "cannot read this value: day is out of range for month"
    text = edit(policy_text, "  grace_days: 5", "  grace_days: " + "9" * 5000)
    error = only_error(text)
    assert (error.code, error.line, error.column) == ("E_YAML_SYNTAX",) + position(text, "9" * 5000)
    assert error.message.startswith("cannot read this value: Exceeds the limit (4300 digits)")


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "value, message",
    [
        ('"1e400"', "1e400 is out of range (at most 15 digits before the decimal point)"),
        ("1" + "0" * 400, "1" + "0" * 400 + " is out of range (at most 15 digits before the decimal point)"),
        ('"1E+999999"', "1E+999999 is out of range (at most 15 digits before the decimal point)"),
        ('"0.' + "0" * 40 + '1"', "0." + "0" * 40 + "1 has more than 40 decimal places"),
    ],
    ids=["1e400", "10**400", "exponent-999999", "41-decimals"],
)
def test_a_number_beyond_the_bounds_is_refused_at_its_place(policy_text, value, message):
    text = edit(policy_text, 'limit: "500000"', f"limit: {value}")
    error = only_error(text)
    assert (error.code, error.path, error.message) == ("E_SHAPE", "credit.limits[0].limit", message)
    assert (error.line, error.column) == position(text, "limit: " + value[:5])


def test_a_threshold_beyond_the_bounds_is_refused_at_its_place(policy_text):
    text = edit(policy_text, "{field: utilisation, gt: 90}", "{field: utilisation, gt: 1e400}")
    error = only_error(text)
    assert (error.code, error.path) == ("E_VALUE_TYPE", "alerts[0].when.gt")
    assert "out of range" in error.message


def test_the_largest_allowed_number_still_compiles(policy_text):
    with compiled(edit(policy_text, 'limit: "500000"', 'limit: "999999999999999.99"')) as variant:
        assert variant.rules_by_id["credit.limit.high"].param("limit") == 99_999_999_999_999_999


def test_a_daily_rate_with_a_million_decimals_is_refused_without_converting_it(policy_text):
    text = edit(policy_text, 'daily_rate: "0.0005"', 'daily_rate: "1E-999999"')
    error = only_error(text)
    assert (error.code, error.path) == ("E_SHAPE", "interest.daily_rate")
    assert error.message == "1E-999999 has more than 40 decimal places"


@pytest.mark.parametrize("value", ["-0", '"-0"', "0.0"])
def test_minus_zero_is_zero(policy_text, value):
    with compiled(edit(policy_text, 'fixed_fee: "0"', f"fixed_fee: {value}")) as variant:
        assert variant.interest.fixed_fee == 0


def test_a_huge_text_is_refused_before_anything_is_compiled(policy_text):
    # the text is never parsed: a nested list bomb beyond the limit is reported as too large
    text = policy_text + "x: " + "[" * MAX_TEXT_BYTES + "\n"
    assert only_error(text).code == "E_POLICY_TOO_LARGE"


def test_compile_policy_refuses_what_load_yaml_refuses(policy_text):
    for text in (policy_text.encode("utf-16"), billion_laughs(), "a: " + "[" * 40 + "\n"):
        with pytest.raises(PolicyInvalid) as info:
            compile_policy(text, "x.yaml")
        assert [e.code for e in info.value.errors] == [e.code for e in load_yaml(text, "x.yaml")[1]]

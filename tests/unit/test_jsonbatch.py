"""awfdrs.jsonbatch: a hostile event is refused alone, a broken body as a whole, with a position.

Pure: no database, no Temporal. Every case compares against what ``json.loads`` makes of the same
text, so "decodes" always means "decodes to exactly what the standard library would give".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from awfdrs import jsonbatch
from awfdrs.jsonbatch import (
    Decoded,
    Item,
    MalformedJson,
    Undecodable,
    decode_one,
    split_array,
    split_batch,
)

DEEP = "[" * 100_000 + "]" * 100_000
BIG_INT = "1" + "0" * 4_999  # 5,000 digits: past Python's own 4,300-digit limit


def event(n: int) -> dict[str, Any]:
    return {
        "idempotency_key": f"evt-{n}",
        "event_type": "payment.failed",
        "payload": {"attempt": n, "duration_ms": n * 1.5, "tags": ["a", "b"], "ok": n % 2 == 0},
    }


def values(items: list[Item]) -> list[Any]:
    """The decoded values; fails the test on any Undecodable."""
    out = []
    for item in items:
        assert isinstance(item, Decoded), item
        out.append(item.value)
    return out


def rejected(item: Item) -> Undecodable:
    assert isinstance(item, Undecodable), item
    return item


def assert_positions(text: str, items: list[Item]) -> None:
    """Each item's offset points at its own text in the body."""
    for item in items:
        if isinstance(item, Decoded):
            assert text[item.offset : item.offset + len(item.raw)] == item.raw
            assert json.loads(item.raw) == item.value
        else:
            assert text.startswith(item.raw_excerpt.rstrip("…"), item.offset)


@contextmanager
def iterative_only() -> Iterator[None]:
    """Make every element take the iterative path, as a raised recursion limit would."""
    saved = jsonbatch._C_DECODER_SAFE_LIMIT
    jsonbatch._C_DECODER_SAFE_LIMIT = 0  # type: ignore[misc]
    try:
        yield
    finally:
        jsonbatch._C_DECODER_SAFE_LIMIT = saved  # type: ignore[misc]


# --- The promise: the hostile ones alone are refused ----------------------------------------------


def test_hostile_events_are_refused_alone_and_the_rest_land() -> None:
    good = [json.dumps(event(n)) for n in range(6)]
    elements = [good[0], good[1], DEEP, good[2], BIG_INT, good[3], '"\\ud800"', good[4], "NaN"]
    elements.append(good[5])
    text = '{"tenant_id": "t-1", "events": [' + ", ".join(elements) + "]}"

    batch = split_batch(text)

    assert batch.fields == {"tenant_id": "t-1"}
    assert len(batch.items) == len(elements)
    bad = {i: rejected(item).reason for i, item in enumerate(batch.items) if i in (2, 4, 8)}
    assert bad == {
        2: "event 2: nested deeper than 64 levels",
        4: "event 4: integer literal of 5000 digits (at most 4000)",
        8: "event 8: NaN is not a JSON number",
    }
    kept = [item for i, item in enumerate(batch.items) if i not in bad]
    # A lone surrogate is the event validator's to refuse, by field name; here it must decode.
    assert values(kept) == [json.loads(e) for e in elements if e not in (DEEP, BIG_INT, "NaN")]
    assert values(kept)[4] == "\ud800"
    assert_positions(text, batch.items)
    for item in batch.items:
        if isinstance(item, Undecodable):
            assert len(item.raw_excerpt) <= jsonbatch.EXCERPT_CHARS
            assert len(item.reason) < 120


def test_offsets_point_at_each_element_in_str_and_bytes() -> None:
    text = '{"events": [1, {"a": "é"},\n  "日本", [ ], "\\u00e9💥"]}'
    for data in (text, text.encode()):
        items = split_batch(data).items
        assert [item.offset for item in items] == [12, 15, 29, 35, 40]
        assert values(items) == json.loads(text)["events"]
        assert_positions(text, items)


# --- One element, judged alone --------------------------------------------------------------------

DEPTH_64 = "[" * 64 + "]" * 64
DEPTH_65 = "[" * 65 + "]" * 65
OBJECTS_65 = '{"a": ' * 65 + "1" + "}" * 65


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        pytest.param(DEEP, "nested deeper than 64 levels", id="100k-deep"),
        pytest.param(DEPTH_65, "nested deeper than 64 levels", id="65-deep-arrays"),
        pytest.param(OBJECTS_65, "nested deeper than 64 levels", id="65-deep-objects"),
        pytest.param(
            "1" * 4_001, "integer literal of 4001 digits (at most 4000)", id="4001-digits"
        ),
        pytest.param("-" + "9" * 4_300, "integer literal of 4300 digits", id="4300-negative"),
        pytest.param(f'{{"n": {BIG_INT}}}', "integer literal of 5000 digits", id="nested-int"),
        pytest.param("1e999", "number 1e999 is too large for a 64-bit float", id="1e999"),
        pytest.param("-1.8e308", "number -1.8e308 is too large", id="just-over"),
        pytest.param("[1, 1e400]", "number 1e400 is too large", id="nested-inf"),
        pytest.param("NaN", "NaN is not a JSON number", id="nan"),
        pytest.param("-Infinity", "-Infinity is not a JSON number", id="-inf"),
        pytest.param('{"x": Infinity}', "Infinity is not a JSON number", id="nested-infinity"),
        pytest.param("[1 2]", "Expecting ',' delimiter at line 1 column 4", id="missing-comma"),
        pytest.param("1 2", "not valid JSON: Extra data at line 1 column 3", id="two-values"),
        pytest.param('{"a": 1,}', "Expecting property name enclosed in double quotes", id="trail"),
        pytest.param("{'a': 1}", "Expecting property name enclosed in double quotes", id="quotes"),
        pytest.param('{"a": [1}]', "Expecting ',' delimiter", id="mismatched-brackets"),
        pytest.param('"a\tb"', "Invalid control character at", id="raw-tab-in-string"),
        pytest.param('"\\x"', "Invalid \\escape", id="bad-escape"),
        pytest.param("tru", "Expecting value at line 1 column 1", id="bare-word"),
        pytest.param("01", "Extra data", id="leading-zero"),
        pytest.param("\u00a01", "Expecting value", id="non-json-space"),
    ],
)
def test_a_hostile_element_is_refused_with_a_reason(element: str, reason: str) -> None:
    text = f'{{"events": [1, {element}, {{"last": true}}]}}'

    first, middle, last = split_batch(text).items

    refused = rejected(middle)
    assert refused.reason.startswith("event 1: ")
    assert reason in refused.reason
    assert refused.offset == text.index(element)
    assert text.startswith(refused.raw_excerpt.rstrip("…"), refused.offset)
    assert values([first, last]) == [1, {"last": True}]


@pytest.mark.parametrize(
    "element",
    [
        pytest.param(DEPTH_64, id="64-deep"),
        pytest.param('{"a": ' * 64 + "1" + "}" * 64, id="64-deep-objects"),
        pytest.param("[" + "[]," * 200 + "[]]", id="many-openers-shallow"),
        pytest.param("9" * 4_000, id="4000-digits"),
        pytest.param("-" + "9" * 4_000, id="4000-digits-negative"),
        pytest.param('"' + "7" * 5_000 + '"', id="digits-in-a-string"),
        pytest.param("1.7976931348623157e308", id="largest-float"),
        pytest.param("1e-999", id="underflow-is-zero"),
        pytest.param("1" * 300 + ".5", id="long-but-finite-float"),
        pytest.param('"\\ud800"', id="lone-surrogate"),
        pytest.param('{"\\udfff": "\\u0000"}', id="surrogate-key-nul-value"),
        pytest.param('"NaN Infinity [ { , \\" \\\\"', id="literals-in-a-string"),
        pytest.param("-0", id="minus-zero"),
        pytest.param("[]", id="empty-array"),
        pytest.param("{}", id="empty-object"),
        pytest.param("null", id="null"),
    ],
)
def test_an_element_within_the_limits_decodes_as_json_loads_would(element: str) -> None:
    in_batch = split_batch(f'{{"events": [{element}]}}').items
    in_array = split_array(f"[{element}]")
    for (item,), offset in ((in_batch, 12), (in_array, 1)):
        assert isinstance(item, Decoded), item
        assert (item.value, item.raw, item.offset) == (json.loads(element), element, offset)


def test_max_depth_is_a_parameter() -> None:
    items = split_array("[[[1]], [[[1]]], 1]", max_depth=2)

    assert [type(item) for item in items] == [Decoded, Undecodable, Decoded]
    assert rejected(items[1]).reason == "event 1: nested deeper than 2 levels"


@pytest.mark.parametrize("kwargs", [{"max_depth": 0}, {"max_depth": 513}, {"max_items": -1}])
def test_nonsense_limits_are_a_programming_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must") as raised:
        split_array("[]", **kwargs)
    assert not isinstance(raised.value, MalformedJson)


# --- The splitter is not fooled by what strings hold ----------------------------------------------


def test_brackets_commas_quotes_and_backslashes_inside_strings() -> None:
    events = ["]", "[", "{", "}", ",", '"', "\\", '\\"]', 'a"b]c,', {"k]": "v,{", "[": ["}"]}]
    events += ["\\\\", '\\"', "\\", "},{", '"],"x":["']
    for text in (json.dumps({"events": events}), json.dumps({"events": events}, indent=1)):
        items = split_batch(text).items
        assert values(items) == events
        assert_positions(text, items)


def test_whitespace_anywhere_json_allows_it() -> None:
    text = (
        '\r\n\t{ \n "events" \t:\r [ \n 1 \n ,\n\t{ "a" : [ 1 , 2 ] }  , "x"\r\n] , "t" : 2 \n}\n '
    )

    batch = split_batch(text)

    assert batch.fields == {"t": 2}
    assert values(batch.items) == [1, {"a": [1, 2]}, "x"]
    assert_positions(text, batch.items)


def test_a_leading_byte_order_mark_is_ignored() -> None:
    text = '\ufeff{"events": [1]}'
    for data in (text, text.encode()):
        assert values(split_batch(data).items) == [1]


@pytest.mark.parametrize("text", ['{"events": []}', '{ "events" : [ \n ] }', '{"events":[],"a":1}'])
def test_an_empty_array_gives_no_items(text: str) -> None:
    assert split_batch(text).items == []


def test_members_other_than_the_array_are_fields() -> None:
    text = '{"tenant_id": "t", "n": -1.5, "x": null, "o": {"a": [1, {"b": true}]}, "items": [2]}'

    batch = split_batch(text, array_key="items")

    assert batch.fields == {"tenant_id": "t", "n": -1.5, "x": None, "o": {"a": [1, {"b": True}]}}
    assert values(batch.items) == [2]


# --- A broken body: refused as a whole, with the position -----------------------------------------

NOT_JSON = "body is not valid JSON"
NOT_BATCH = "body is not a batch"


@pytest.mark.parametrize(
    ("text", "line", "column", "prefix", "reason"),
    [
        ("", 1, 1, NOT_JSON, "empty body"),
        (" \n ", 2, 2, NOT_JSON, "empty body"),
        ('{"events": [1, 2', 1, 17, NOT_JSON, "unexpected end of body: expected ',' or ']'"),
        ('{"events": [1, 2]', 1, 18, NOT_JSON, "unexpected end of body: expected ',' or '}'"),
        ('{"events": [{"a": [1]', 1, 22, NOT_JSON, "unexpected end of body: brackets left open"),
        ('{"events": [1, "ab]}', 1, 16, NOT_JSON, "unterminated string"),
        ('{"events": [1]}\n\n  x', 3, 3, NOT_JSON, "unexpected data after the end of the body"),
        ('{"events": [1,]}', 1, 15, NOT_JSON, "expected a value"),
        ('{"events": [,1]}', 1, 13, NOT_JSON, "expected a value"),
        ('{\n "events": [\n  1,\n  ,2]}', 4, 3, NOT_JSON, "expected a value"),
        ('{"events": [1}', 1, 14, NOT_JSON, "expected ',' or ']' after an element"),
        ('{"events": [1]]', 1, 15, NOT_JSON, "expected ',' or '}' after a member"),
        ('{"events": [1] "a": 2}', 1, 16, NOT_JSON, "expected ',' or '}' after a member"),
        ('{"events" [1]}', 1, 11, NOT_JSON, "expected ':' after the member name 'events'"),
        ("{'events': []}", 1, 2, NOT_JSON, "expected a member name in double quotes"),
        ('{"events": [], }', 1, 16, NOT_JSON, "expected a member name in double quotes"),
        ('{"ev\nents": []}', 1, 5, NOT_JSON, "Invalid control character at"),
        ('[{"a": 1}]', 1, 1, NOT_BATCH, "body must be a JSON object"),
        ("null", 1, 1, NOT_BATCH, "body must be a JSON object"),
        ('{"events": {"a": 1}}', 1, 12, NOT_BATCH, "events: must be an array"),
        ('{"events": null}', 1, 12, NOT_BATCH, "events: must be an array"),
        ('{"tenant_id": "t"}', 1, 18, NOT_BATCH, "events: missing"),
        ("{}", 1, 2, NOT_BATCH, "events: missing"),
        ('{"events": [], "events": [1]}', 1, 16, NOT_BATCH, "events: given more than once"),
        ('{"a": 1, "a": 1, "events": []}', 1, 10, NOT_BATCH, "a: given more than once"),
        ('{"a": 1e999, "events": []}', 1, 7, NOT_JSON, "a: number 1e999 is too large"),
        ('{"a": [1, "1e999", 1e999]}', 1, 20, NOT_JSON, "a: number 1e999 is too large"),
        ('{"a": NaN, "events": []}', 1, 7, NOT_JSON, "a: NaN is not a JSON number"),
        (f'{{"a": {BIG_INT}}}', 1, 7, NOT_JSON, "a: integer literal of 5000 digits"),
        (f'{{"a": {DEPTH_65}}}', 1, 7, NOT_JSON, "a: nested deeper than 64 levels"),
        ('{"a": [1 2], "events": []}', 1, 10, NOT_JSON, "a: Expecting ',' delimiter"),
        ('{"a": 1 2, "events": []}', 1, 9, NOT_JSON, "a: unexpected data after the value"),
    ],
)
def test_a_broken_body_names_the_position(
    text: str, line: int, column: int, prefix: str, reason: str
) -> None:
    offset = sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + column - 1

    with pytest.raises(MalformedJson) as raised:
        split_batch(text)

    error = raised.value
    assert (error.line, error.column, error.offset) == (line, column, offset)
    assert str(error) == f"{prefix} at line {line}, column {column} (char {offset}): {error.reason}"
    assert reason in error.reason
    assert isinstance(error, ValueError)


def test_max_items_refuses_the_body_at_the_first_item_too_many() -> None:
    text = '{"events": [1, 2, 3]}'
    assert values(split_batch(text, max_items=3).items) == [1, 2, 3]
    assert split_batch('{"events": []}', max_items=0).items == []

    with pytest.raises(MalformedJson) as raised:
        split_batch(text, max_items=2)

    assert raised.value.offset == text.index("3")
    assert raised.value.reason == "events: more than 2 items"


# --- Bytes that are not UTF-8 ---------------------------------------------------------------------


def test_an_invalid_byte_inside_an_event_costs_only_that_event() -> None:
    text = '{"events": ["é", "a\udcffb", {"k": "\udce9"}, 2]}'
    data = text.encode("utf-8", "surrogateescape")

    items = split_batch(data).items

    assert values([items[0], items[3]]) == ["é", 2]
    first, second = rejected(items[1]), rejected(items[2])
    ff, e9 = data.index(b"\xff"), data.index(b"\xe9")
    assert first.reason == (
        f"event 1: not valid UTF-8 at byte {ff} of the body (byte 0xff: invalid start byte)"
    )
    assert f"at byte {e9} of the body (byte 0xe9:" in second.reason
    assert first.raw_excerpt == '"a\\xffb"'
    # Offsets count characters of the text, as everywhere else ("é" is one, but two bytes).
    assert (first.offset, second.offset) == (text.index('"a'), text.index('{"k"'))
    assert data.index(b'"a') == first.offset + 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"events": [1]}\xff', "byte 0xff: invalid start byte"),
        (b'{"events": [1], "a": "\xc3("}', "byte 0xc3: invalid continuation byte"),
        (b'{"\xff": 1, "events": []}', "byte 0xff: invalid start byte"),
        (b'{"events": []\x80}', "byte 0x80: invalid start byte"),
        (b'{"events": [], "a": "\xe2\x82"}', "byte 0xe2: invalid continuation byte"),
        (b'{"events": []}\xe2\x82', "byte 0xe2: unexpected end of data"),
        (b'{"\xc3\xa9": 1, "events": [] \xff', "byte 0xff"),
    ],
)
def test_an_invalid_byte_outside_the_events_refuses_the_body(data: bytes, reason: str) -> None:
    with pytest.raises(UnicodeDecodeError) as first_fault:
        data.decode("utf-8")
    bad = first_fault.value.start

    with pytest.raises(MalformedJson) as raised:
        split_batch(data)

    assert raised.value.offset == bad
    assert str(raised.value).startswith(f"body is not valid UTF-8 at byte {bad} (line 1, column")
    assert reason in raised.value.reason


# --- split_array and decode_one -------------------------------------------------------------------


def test_split_array_takes_a_bare_array() -> None:
    text = ' [{"specversion": "1.0"}, NaN, [] ] '
    items = split_array(text)
    assert values([items[0], items[2]]) == [{"specversion": "1.0"}, []]
    assert rejected(items[1]).reason == "event 1: NaN is not a JSON number"
    assert split_array(b"[]") == []


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ('{"events": []}', 1, "body must be a JSON array"),
        ("[1] [2]", 5, "unexpected data after the end of the body"),
        ("[1", 3, "unexpected end of body: expected ',' or ']' after an element"),
        ("[1, 2, 3]", 5, "body: more than 1 items"),
    ],
)
def test_split_array_refuses_a_broken_body(text: str, column: int, reason: str) -> None:
    with pytest.raises(MalformedJson) as raised:
        split_array(text, max_items=1 if "more" in reason else None)
    assert (raised.value.column, raised.value.reason) == (column, reason)


@pytest.mark.parametrize(
    "text", ['{"a": [1, 2.5, "x", null, true]}', " 7 ", '"\\ud800"', DEPTH_64, "9" * 4_000]
)
def test_decode_one_decodes_as_json_loads(text: str) -> None:
    assert decode_one(text) == json.loads(text)
    assert decode_one(text.encode("utf-8", "surrogatepass")) == json.loads(text)


@pytest.mark.parametrize(
    ("data", "line", "column", "reason"),
    [
        ('{"a":\n  [1, 2,, 3]}', 2, 9, "Expecting value"),
        ('{"a": 1} x', 1, 10, "unexpected data after the end of the body"),
        ("", 1, 1, "empty body"),
        ('{"a": "x', 1, 7, "unterminated string"),
        ('{"a": 1', 1, 8, "unexpected end of body: brackets left open"),
        (DEEP, 1, 1, "nested deeper than 64 levels"),
        ('{"a": "NaN", "b": NaN}', 1, 19, "NaN is not a JSON number"),
        (f'{{"n":\n {BIG_INT}}}', 2, 2, "integer literal of 5000 digits (at most 4000)"),
        ('[0, 10e999, "1e999"]', 1, 5, "number 10e999 is too large for a 64-bit float"),
        (b'{"a": "\xff"}', 1, 8, "byte 0xff: invalid start byte"),
    ],
)
def test_decode_one_refuses_with_the_position(
    data: str | bytes, line: int, column: int, reason: str
) -> None:
    with pytest.raises(MalformedJson) as raised:
        decode_one(data)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert reason in raised.value.reason


# --- The iterative path: same answers, and taken when the C decoder is not trusted ----------------


def test_a_raised_recursion_limit_keeps_deep_input_away_from_the_c_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(text: str, pos: int) -> tuple[Any, int]:
        raise AssertionError("the C decoder was given an element")

    # Only the module's view of the limit is raised; the interpreter's stays as it is.
    monkeypatch.setattr(jsonbatch, "sys", SimpleNamespace(getrecursionlimit=lambda: 1_000_000))
    monkeypatch.setattr(jsonbatch, "_FAST_SCAN", refuse)

    items = split_array(f'[1, {DEEP}, {{"a": [2]}}]')

    assert values([items[0], items[2]]) == [1, {"a": [2]}]
    assert rejected(items[1]).reason == "event 1: nested deeper than 64 levels"


def test_the_iterative_path_gives_the_same_items() -> None:
    elements = [json.dumps(event(1)), DEEP, BIG_INT, "1e999", "[1 2]", '"\\ud800"', "NaN", "{}"]
    text = '{"events": [' + " , ".join(elements) + "]}"
    fast = split_batch(text)
    with iterative_only():
        slow = split_batch(text)
    assert slow == fast


# --- Properties -----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
DUMPS_STYLES = st.sampled_from(
    [{}, {"indent": 2}, {"separators": (",", ":")}, {"ensure_ascii": False}, {"indent": "\t"}]
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(JSON_VALUES, max_size=8), style=DUMPS_STYLES, as_bytes=st.booleans())
def test_any_json_batch_splits_into_its_values(
    events: list[Any], style: dict[str, Any], as_bytes: bool
) -> None:
    text = json.dumps({"tenant_id": "t", "events": events}, **style)

    batch = split_batch(text.encode() if as_bytes else text)

    assert values(batch.items) == events
    assert batch.fields == {"tenant_id": "t"}
    assert_positions(text, batch.items)
    assert values(split_array(json.dumps(events, **style))) == events


HOSTILE = st.sampled_from(
    [
        DEPTH_65,
        "1" * 4_001,
        "-1e400",
        "NaN",
        "Infinity",
        "[1 2]",
        '{"a" 1}',
        "tru",
        '"a\tb"',
        "[1,]",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    elements=st.lists(
        st.tuples(st.just(True), JSON_VALUES.map(json.dumps)) | st.tuples(st.just(False), HOSTILE),
        max_size=10,
    ),
    separator=st.sampled_from([",", ", ", "\n  ,\t"]),
)
def test_hostile_elements_anywhere_are_refused_alone(
    elements: list[tuple[bool, str]], separator: str
) -> None:
    text = '{"events": [' + separator.join(element for _, element in elements) + "]}"

    items = split_batch(text).items

    assert len(items) == len(elements)
    offset = len('{"events": [')
    for (good, element), item in zip(elements, items, strict=True):
        if good:
            assert isinstance(item, Decoded)
            assert (item.value, item.raw) == (json.loads(element), element)
        else:
            assert isinstance(item, Undecodable)
        assert item.offset == offset
        offset += len(element) + len(separator)


JSONISH = st.text(alphabet='[]{}",:\\ \n0123456789.eE+-truefalsnNaIiy\ud800', max_size=40)


@st.composite
def damaged_documents(draw: st.DrawFn) -> str:
    """A valid batch with a few characters inserted, deleted or swapped, or cut short."""
    text = json.dumps({"events": draw(st.lists(JSON_VALUES, max_size=4))})
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["", '"', "\\", "[", "]", "{", "}", ","]))
            + text[at + draw(st.integers(0, 1)) :]
        )
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(JSONISH, damaged_documents(), st.text(max_size=30), st.binary(max_size=30)))
def test_arbitrary_input_returns_or_raises_malformed_json(data: str | bytes) -> None:
    outcomes = []
    for mode in (nullcontext(), iterative_only()):
        with mode:
            for split in (split_batch, split_array, decode_one):
                try:
                    outcomes.append(split(data))
                except MalformedJson as exc:
                    outcomes.append(str(exc))
    assert outcomes[:3] == outcomes[3:]  # the iterative path agrees with the fast one

"""Split a JSON batch into its elements so that one hostile element cannot sink the others.

A body such as ``{"tenant_id": "...", "events": [...]}`` is checked as a document (strings,
brackets, the commas between elements) and each element of the array is decoded on its own. An
element nested too deep, holding an integer literal of more than 4,000 digits, a number that is
infinite as a float, NaN or Infinity, invalid UTF-8 or broken syntax becomes an ``Undecodable``
with a reason, and the rest of the batch still decodes. Only a body whose element boundaries
cannot be found (an unterminated string, unbalanced brackets, truncation, trailing data, the wrong
shape) raises ``MalformedJson``, with the line, column and offset of the fault.

How the work is shared. json's C decoder is the fast path: decoding an element in place, it also
learns where the element ends. It recurses, but checks the interpreter's recursion limit at every
level, so a 100,000-deep element makes it raise ``RecursionError`` long before the C stack is at
risk (``_C_DECODER_SAFE_LIMIT`` covers processes that raise that limit). Whenever it fails, an
iterative scanner that tracks only string state and bracket depth finds the element's end and
depth without recursion, and the element is judged by a decoder that is only ever given input
already known to be at most ``max_depth`` deep. Finding every boundary first with a regular
expression over strings and brackets, then decoding each element, measured 5 to 17 times
``json.loads``. This way costs about twice ``json.loads`` on a batch of 500 typical events, of
which 1.2x is decoding the elements one by one (json shares repeated key strings only within one
call) and the rest the checks and bookkeeping per element.

Pure: no I/O. The module's decoders are shared between threads as json's own default decoder is.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any, Final, NoReturn, TypeAlias

__all__ = [
    "EXCERPT_CHARS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "Batch",
    "Decoded",
    "Item",
    "MalformedJson",
    "Undecodable",
    "decode_one",
    "split_array",
    "split_batch",
]

MAX_DEPTH: Final = 64
MAX_INT_DIGITS: Final = 4000
EXCERPT_CHARS: Final = 80
# Above this the depth limit would no longer keep the checked decoder, which recurses, shallow.
_MAX_DEPTH_CEILING: Final = 512
# json's C decoder stops at the recursion limit, using roughly 65-130 bytes of C stack per level
# (on 3.11, 8,000 levels fit a 1 MiB thread stack and 16,000 did not). Where the limit has been
# raised past this, every element takes the iterative path instead: same results, slower.
_C_DECODER_SAFE_LIMIT: Final = 4_000

_WS: Final = " \t\n\r"  # JSON's whitespace; str.isspace() would also take \x0b, \u2028, ...
_SPACES: Final = frozenset(_WS)
_SKIP_WS = re.compile(r"[ \t\n\r]*").match
_STRING: Final = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
# A string (escapes kept whole), a run of openers, a run of closers, a comma, or a quote that
# starts no complete string, i.e. one never closed. Runs make a deep element one match, not one
# per bracket; possessive quantifiers keep a failing string match linear.
_TOKEN = re.compile(rf'{_STRING}|[\[{{]++|[\]}}]++|,|"', re.DOTALL)
# A digit run longer than MAX_INT_DIGITS, tried only from the start of each run (linear time).
_LONG_DIGITS = re.compile(rf"(?<![0-9])[0-9]{{{MAX_INT_DIGITS + 1}}}")
# Strings (skipped whole) and the literals a hook can refuse, to point at the one refused.
_LITERAL = re.compile(rf"{_STRING}|-?[0-9][0-9.eE+-]*|-?Infinity|NaN", re.DOTALL)
# What bytes.decode("utf-8", "surrogateescape") makes of a byte that is not valid UTF-8.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class MalformedJson(ValueError):
    """The body as a whole cannot be split: refuse it (an HTTP 400) and quote ``str(exc)``.

    ``line`` and ``column`` are 1-based and ``offset`` 0-based, counted in characters of the
    decoded text as ``json.JSONDecodeError`` counts them; for invalid UTF-8, where there is no
    text yet, ``offset`` counts bytes and the message says "at byte". ``reason`` is the message
    without its position, for callers that format their own.
    """

    def __init__(self, message: str, *, reason: str, line: int, column: int, offset: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.line = line
        self.column = column
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Decoded:
    """An element that decoded: ``value`` equals ``json.loads(raw)``, within every limit.

    ``raw`` is the element's exact text and ``offset`` the index of its first character in the
    decoded body. Strings and keys are as sent, lone surrogates and NUL included: the event
    validator rejects those with the field's name.
    """

    value: Any
    raw: str
    offset: int


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An element refused on its own; the other elements of its batch are unaffected.

    ``reason`` names the element by its 0-based index (``items[3]``, ``/events/3``) and quotes
    little of it. ``raw_excerpt`` is at most 80 characters of the element, with anything UTF-8
    cannot encode (an invalid byte, a lone surrogate) written as a backslash escape, so it can be
    logged or sent back as it is.
    """

    reason: str
    raw_excerpt: str
    offset: int


Item: TypeAlias = Decoded | Undecodable


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch body: its array split into items in input order, every other member decoded."""

    fields: dict[str, Any]
    items: list[Item]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Hostile(ValueError):
    """Valid JSON that is refused here; the message is the reason, ``literal`` the culprit."""

    def __init__(self, reason: str, literal: str) -> None:
        super().__init__(reason)
        self.literal = literal


def _bounded_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _Hostile(f"integer literal of {digits} digits (at most {MAX_INT_DIGITS})", literal)
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _Hostile(f"number {_clip(literal, 40)} is too large for a 64-bit float", literal)
    return value


def _reject_constant(literal: str) -> NoReturn:
    raise _Hostile(f"{literal} is not a JSON number", literal)


# Only floats and NaN/Infinity reach Python from the fast decoder: integers stay in C (over 4,300
# digits it raises; the rest are caught by length). Its scanner is called directly, as raw_decode
# would add a Python frame per element. (Any: typeshed types the scanner's argument wrongly.)
_fast_decoder: Any = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)
_FAST_SCAN = make_scanner(_fast_decoder)
_CHECKED = json.JSONDecoder(
    parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_reject_constant
)


def _no_scan(text: str, pos: int) -> tuple[Any, int]:
    raise ValueError("the C decoder is not trusted at this recursion limit")


# A frozen dataclass's __init__ goes through object.__setattr__ per field; setting the slots
# through their descriptors builds the same object in half the time (a tenth of a json.loads).
_new = object.__new__
_set_value = vars(Decoded)["value"].__set__
_set_raw = vars(Decoded)["raw"].__set__
_set_offset = vars(Decoded)["offset"].__set__


class _Doc:
    """The text being split, and how to name a position in it."""

    __slots__ = ("_mark", "escaped", "source", "text")

    def __init__(self, data: bytes | str) -> None:
        self.source: bytes | None = None
        self.escaped = False
        self._mark = (0, 0)  # (char, byte) offsets of the last utf8_at() answer
        if isinstance(data, str):
            self.text = data
            return
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Carry on so a bad byte inside one element costs only that element: each invalid
            # byte becomes one lone surrogate, which valid UTF-8 never produces.
            self.text = data.decode("utf-8", "surrogateescape")
            self.source = data
            self.escaped = True

    def start(self) -> int:
        """First significant index; a leading byte order mark is ignored, as RFC 8259 allows."""
        pos = self.skip_ws(1 if self.text.startswith("\ufeff") else 0)
        if pos == len(self.text):
            raise self.error(pos, "empty body")
        return pos

    def skip_ws(self, pos: int) -> int:
        match = _SKIP_WS(self.text, pos)
        return pos if match is None else match.end()

    def bad_byte(self, start: int, stop: int) -> int:
        """Index of the first invalid UTF-8 byte in text[start:stop], or -1."""
        found = _ESCAPED_BYTE.search(self.text, start, stop) if self.escaped else None
        return -1 if found is None else found.start()

    def utf8_at(self, pos: int) -> tuple[int, str]:
        """The byte offset of the invalid byte at ``pos`` and what is wrong with it."""
        # Resumes from the last answer: elements are visited in order, so a body with a bad byte
        # in every element stays linear.
        chars, count = self._mark if pos >= self._mark[0] else (0, 0)
        count += len(self.text[chars:pos].encode("utf-8", "surrogateescape"))
        self._mark = (pos, count)
        assert self.source is not None
        why = "invalid byte"
        try:
            self.source[count : count + 4].decode("utf-8")
        except UnicodeDecodeError as exc:
            why = str(exc.reason)
        return count, f"byte 0x{self.source[count]:02x}: {why}"

    def _where(self, pos: int) -> tuple[int, int]:
        return self.text.count("\n", 0, pos) + 1, pos - self.text.rfind("\n", 0, pos)

    def utf8_error(self, pos: int) -> MalformedJson:
        line, column = self._where(pos)
        offset, reason = self.utf8_at(pos)
        message = f"body is not valid UTF-8 at byte {offset} (line {line}, column {column})"
        return MalformedJson(
            f"{message}: {reason}", reason=reason, line=line, column=column, offset=offset
        )

    def error(self, pos: int, reason: str, what: str = "body is not valid JSON") -> MalformedJson:
        if self.escaped and _ESCAPED_BYTE.match(self.text, pos):
            return self.utf8_error(pos)  # whatever the parser wanted here, the byte is the fault
        line, column = self._where(pos)
        message = f"{what} at line {line}, column {column} (char {pos}): {reason}"
        return MalformedJson(message, reason=reason, line=line, column=column, offset=pos)

    def extent(self, start: int) -> tuple[int, int]:
        """Where the value at ``start`` ends and how deep it nests, without recursion.

        Returns the index of the first comma or closing bracket after the value (or the length of
        the text) and the depth (0 for a scalar, 1 for ``[]``). An unterminated string or input
        ending inside a bracket raise ``MalformedJson``: no boundary after them can be trusted.
        Bracket kinds are not paired here; the decoder reports a mismatch against one element.
        """
        text = self.text
        depth = deepest = 0
        for token in _TOKEN.finditer(text, start):
            at = token.start()
            first = text[at]
            if first == '"':
                if token.end() - at == 1:
                    raise self.error(at, "unterminated string")
            elif first == ",":
                if depth == 0:
                    return at, deepest
            elif first in "[{":
                depth += token.end() - at
                deepest = max(deepest, depth)
            elif token.end() - at > depth:
                return at + depth, deepest
            else:
                depth -= token.end() - at
        if depth:
            raise self.error(len(text), "unexpected end of body: brackets left open")
        return len(text), deepest


def _literal_at(text: str, start: int, stop: int, literal: str) -> int:
    """Index of ``literal`` as a token (not inside a string) in text[start:stop], else start."""
    for match in _LITERAL.finditer(text, start, stop):
        if match.group() == literal:
            return match.start()
    return start


def _judge(doc: _Doc, raw: str, offset: int, index: int, deepest: int, max_depth: int) -> Item:
    """The careful verdict on one element; ``deepest`` is measured, so decoding stays shallow."""
    bad = doc.bad_byte(offset, offset + len(raw))
    if bad >= 0:
        at, why = doc.utf8_at(bad)
        reason = f"not valid UTF-8 at byte {at} of the body ({why})"
    elif deepest > max_depth:
        reason = f"nested deeper than {max_depth} levels"
    else:
        try:
            return Decoded(_CHECKED.decode(raw), raw, offset)
        except _Hostile as exc:
            reason = str(exc)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        except (ValueError, RecursionError) as exc:
            reason = f"not valid JSON: {_clip(str(exc), 100)}"
    excerpt = _clip(raw, EXCERPT_CHARS)
    if doc.escaped:  # show an invalid byte as \xff, the way the sender would look for it
        excerpt = excerpt.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    elif not excerpt.isascii():
        excerpt = excerpt.encode("utf-8", "backslashreplace").decode("utf-8")
    return Undecodable(f"event {index}: {reason}", _clip(excerpt, EXCERPT_CHARS), offset)


def _elements(
    doc: _Doc, pos: int, *, label: str, max_items: int | None, max_depth: int
) -> tuple[list[Item], int]:
    """Split the array whose '[' precedes ``pos``; returns the items and the index after ']'.

    Runs once per event, hence the inlining. The checks after a fast decode (opener count,
    length, invalid bytes) are cheap over-approximations that only pick elements for ``_judge``.
    """
    text = doc.text
    items: list[Item] = []
    append = items.append
    pos = doc.skip_ws(pos)
    if text[pos : pos + 1] == "]":
        return items, pos + 1
    scan = _FAST_SCAN if sys.getrecursionlimit() <= _C_DECODER_SAFE_LIMIT else _no_scan
    limit = -1 if max_items is None else max_items
    every = doc.escaped  # then every element must be searched for invalid bytes
    spaces, new, decoded = _SPACES, _new, Decoded  # locals: a few percent, once per event
    set_value, set_raw, set_offset = _set_value, _set_raw, _set_offset
    while True:
        if len(items) == limit:
            raise doc.error(pos, f"{label}: more than {limit} items", "body is refused")
        try:
            value, end = scan(text, pos)
        except (ValueError, RecursionError, StopIteration):
            end = -1
        else:
            after = end
            char = text[end : end + 1]
            if char in spaces:
                after = doc.skip_ws(end)
                char = text[after : after + 1]
            if char != "," and char != "]":
                end = -1  # more follows the value inside the element: _judge says what
        if end < 0:
            after = _slow_element(doc, pos, items, max_depth)
        else:
            raw = text[pos:end]
            if (
                every
                or raw.count("[") + raw.count("{") > max_depth
                or (len(raw) > MAX_INT_DIGITS and _LONG_DIGITS.search(raw))
            ):
                append(_judge(doc, raw, pos, len(items), doc.extent(pos)[1], max_depth))
            else:
                item = new(decoded)
                set_value(item, value)
                set_raw(item, raw)
                set_offset(item, pos)
                append(item)
        if text[after] == "]":
            return items, after + 1
        pos = after + 1
        if text[pos : pos + 1] in spaces:  # json.dumps puts one space after each comma
            pos += 1
            if text[pos : pos + 1] in spaces:
                pos = doc.skip_ws(pos)


def _slow_element(doc: _Doc, pos: int, items: list[Item], max_depth: int) -> int:
    """Find the element at ``pos`` iteratively, append its verdict, return its delimiter's index."""
    text = doc.text
    after, deepest = doc.extent(pos)
    if after == len(text):
        raise doc.error(after, _expected(doc, after, "',' or ']' after an element"))
    if text[after] == "}":
        raise doc.error(after, "expected ',' or ']' after an element")
    raw = text[pos:after].rstrip(_WS)
    if not raw:
        raise doc.error(pos, "expected a value")
    items.append(_judge(doc, raw, pos, len(items), deepest, max_depth))
    return after


def _value(doc: _Doc, start: int, max_depth: int, label: str = "") -> tuple[Any, int]:
    """Decode the value at ``start`` with every check; returns it and the index after it."""
    text = doc.text
    if start == len(text):
        raise doc.error(start, _expected(doc, start, "a value"))
    stop, deepest = doc.extent(start)
    bad = doc.bad_byte(start, stop)
    if bad >= 0:
        raise doc.utf8_error(bad)
    if deepest > max_depth:
        raise doc.error(start, f"{label}nested deeper than {max_depth} levels")
    try:
        value, end = _CHECKED.raw_decode(text, start)
    except _Hostile as exc:
        raise doc.error(_literal_at(text, start, stop, exc.literal), f"{label}{exc}") from None
    except json.JSONDecodeError as exc:
        raise doc.error(exc.pos, f"{label}{exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise doc.error(start, f"{label}{_clip(str(exc), 100)}") from None
    end = doc.skip_ws(end)
    if end != stop:
        after = f"{label}unexpected data after the value" if label else ""
        raise doc.error(end, after or "unexpected data after the end of the body")
    return value, end


def _name(doc: _Doc, pos: int) -> tuple[str, int]:
    """Read a member name and its colon; returns the name and the index of the value."""
    text = doc.text
    if text[pos : pos + 1] != '"':
        raise doc.error(pos, _expected(doc, pos, "a member name in double quotes"))
    try:
        name, end = _FAST_SCAN(text, pos)  # at a quote the scanner reads exactly one string
    except json.JSONDecodeError as exc:
        raise doc.error(exc.pos, exc.msg) from None
    bad = doc.bad_byte(pos, end)
    if bad >= 0:
        raise doc.utf8_error(bad)
    pos = doc.skip_ws(end)
    if text[pos : pos + 1] != ":":
        raise doc.error(pos, f"expected ':' after the member name {_clip(name, 40)!r}")
    return name, doc.skip_ws(pos + 1)


def _expected(doc: _Doc, pos: int, what: str) -> str:
    return f"{'unexpected end of body: ' if pos >= len(doc.text) else ''}expected {what}"


def _finish(doc: _Doc, pos: int) -> None:
    pos = doc.skip_ws(pos)
    if pos != len(doc.text):
        raise doc.error(pos, "unexpected data after the end of the body")


def _check_options(max_items: int | None, max_depth: int) -> None:
    if not 0 < max_depth <= _MAX_DEPTH_CEILING:
        raise ValueError(f"max_depth must be between 1 and {_MAX_DEPTH_CEILING}")
    if max_items is not None and max_items < 0:
        raise ValueError("max_items must not be negative")


def split_batch(
    data: bytes | str,
    *,
    array_key: str = "events",
    max_items: int | None = None,
    max_depth: int = MAX_DEPTH,
) -> Batch:
    """Split a JSON object whose ``array_key`` member is the array of events.

    Every other member lands in ``Batch.fields`` under the same limits. ``MalformedJson`` is
    raised for a fault in one of those members (naming it), a member name given twice (parsers
    disagree on which one wins, so none is guessed), a missing or non-array ``array_key``, more
    than ``max_items`` elements, and any fault that hides where the elements end. A fault inside
    one element only makes that element ``Undecodable``. ``max_depth`` counts the levels of one
    element or member; ``ValueError`` if it is outside 1..512 or ``max_items`` is negative.
    """
    _check_options(max_items, max_depth)
    doc = _Doc(data)
    text = doc.text
    pos = doc.start()
    if text[pos] != "{":
        raise doc.error(pos, "body must be a JSON object", "body is not a batch")
    fields: dict[str, Any] = {}
    items: list[Item] | None = None
    pos = doc.skip_ws(pos + 1)
    closed = text[pos : pos + 1] == "}"
    while not closed:
        at = pos
        name, pos = _name(doc, pos)
        if name in fields or (name == array_key and items is not None):
            raise doc.error(at, f"{_clip(name, 40)}: given more than once", "body is not a batch")
        if name != array_key:
            fields[name], pos = _value(doc, pos, max_depth, f"{_clip(name, 40)}: ")
        elif text[pos : pos + 1] == "[":
            items, pos = _elements(
                doc, pos + 1, label=array_key, max_items=max_items, max_depth=max_depth
            )
            pos = doc.skip_ws(pos)
        else:
            raise doc.error(pos, f"{array_key}: must be an array", "body is not a batch")
        closed = text[pos : pos + 1] == "}"
        if not closed:
            if text[pos : pos + 1] != ",":
                raise doc.error(pos, _expected(doc, pos, "',' or '}' after a member"))
            pos = doc.skip_ws(pos + 1)
    if items is None:
        raise doc.error(pos, f"{array_key}: missing", "body is not a batch")
    _finish(doc, pos + 1)
    return Batch(fields, items)


def split_array(
    data: bytes | str, *, max_items: int | None = None, max_depth: int = MAX_DEPTH
) -> list[Item]:
    """Split a body that is a bare JSON array, as in CloudEvents' batch mode.

    The guarantees and exceptions of ``split_batch``, with the array as the whole body.
    """
    _check_options(max_items, max_depth)
    doc = _Doc(data)
    pos = doc.start()
    if doc.text[pos] != "[":
        raise doc.error(pos, "body must be a JSON array", "body is not a batch")
    items, pos = _elements(doc, pos + 1, label="body", max_items=max_items, max_depth=max_depth)
    _finish(doc, pos)
    return items


def decode_one(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one small document under the element rules; every fault raises ``MalformedJson``.

    The depth is measured iteratively before the decoder runs, so nesting cannot make it recurse
    past ``max_depth``. Integers over 4,000 digits, numbers infinite as floats, NaN and Infinity
    are refused with the position of the literal.
    """
    _check_options(None, max_depth)
    doc = _Doc(data)
    value, end = _value(doc, doc.start(), max_depth)
    _finish(doc, end)
    return value

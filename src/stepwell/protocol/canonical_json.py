"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

Both official Inngest SDKs verify a request signature against the canonical form of the body
(PROTOCOL.md §1.2), so the engine signs exactly these bytes and the SDK re-canonicalises what it
received before checking the MAC.

The rules, from RFC 8785 §3.2:

* no whitespace between tokens;
* object members sorted by their names compared as arrays of UTF-16 code units;
* strings escape only ``"``, ``\\`` and the C0 controls (``\\b \\t \\n \\f \\r`` in their short
  form, the rest as ``\\u00xx`` with lower-case hex); everything else, non-ASCII included, is
  written as UTF-8;
* numbers are IEEE-754 doubles written the way ECMAScript's ``Number.prototype.toString`` does
  (shortest round-trip digits, ``1e+21``, ``1e-7``, ``-0`` written as ``0``).

One deliberate extension: a Python ``int`` beyond ±2**53 is outside I-JSON, which RFC 8785
requires of its input. It is written with all its digits (as the ``jcs`` package the official
Python SDK uses does) instead of being rounded to the nearest double, so no data changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["canonical_json", "exact", "format_number"]

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)} | _SHORT_ESCAPES


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 encoding of a JSON value.

    Args:
        value: ``None``, ``bool``, ``int``, ``float``, ``str``, a list or tuple, or a mapping
            with string keys, nested freely.

    Raises:
        TypeError: a value or key of another type.
        ValueError: a NaN or infinite float, or a string holding a lone surrogate.
    """
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate, or an int past 64 bits: the exact writer decides
    return exact(value)


def exact(value: Any) -> bytes:
    """:func:`canonical_json` written token by token, for every value (the reference)."""
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"a string holds a lone surrogate, which JSON cannot carry: {exc}"
        ) from None


def _plain(value: Any) -> bool:
    """Whether orjson's sorted output is already canonical for ``value``.

    It is for ``None``, booleans, ints, strings, lists, tuples and dicts of them: orjson writes
    strings with the same escapes, ints with all their digits, and sorts keys by code point,
    which is UTF-16 order unless a key holds a character at or past U+E000 (surrogate pairs
    sort before those in UTF-16). Floats (ECMAScript's number layout), other mappings and
    anything else take the exact writer.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False
    return True


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int | float):
        out.append(format_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"a {type(value).__name__} is not a JSON value")


def _write_object(value: Mapping[Any, Any], out: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    # Big-endian UTF-16 bytes compare exactly like sequences of UTF-16 code units.
    names = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    out.append("{")
    for i, name in enumerate(names):
        if i:
            out.append(",")
        out.append(_string(name))
        out.append(":")
        _write(value[name], out)
    out.append("}")


def _string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def format_number(number: int | float) -> str:
    """A number as ECMAScript's ``Number.prototype.toString`` writes it (RFC 8785 §3.2.2.3).

    Integers within ±2**53 (and beyond, see the module docstring) keep their digits.

    Raises:
        ValueError: NaN or an infinity.
    """
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        raise ValueError(f"{number!r} is not a JSON number")
    if number == 0:
        return "0"  # also -0.0
    sign = "-" if number < 0 else ""
    digits, point = _shortest_digits(abs(number))
    return sign + _es_layout(digits, point)


def _shortest_digits(number: float) -> tuple[str, int]:
    """``(digits, n)`` with ``number == 0.<digits> * 10**n`` and ``digits`` as short as possible.

    Python's ``repr`` already yields the shortest digit string that round-trips, which is what
    ECMAScript requires; only the layout differs.
    """
    mantissa, _, exponent = repr(number).partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0") if fraction != "0" else ""
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _es_layout(digits: str, n: int) -> str:
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exponent = n - 1
    mark = "+" if exponent >= 0 else "-"
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{mark}{abs(exponent)}"

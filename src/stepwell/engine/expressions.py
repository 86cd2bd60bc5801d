"""CEL expressions: trigger ``if`` filters, wait and cancel matches, and keys.

Expressions are Common Expression Language, evaluated by ``celpy``. Variables are plain JSON-like
values; an expression sees a trigger as ``event`` and, in waits and cancellations, the incoming
candidate as ``async``::

    event.data.plan == 'pro'
    event.data.id == async.data.id

Two departures from celpy's defaults, both as the current CEL language definition specifies:

* numbers compare across ``int``, ``uint`` and ``double`` (``event.data.amount > 100.0`` works
  when ``amount`` is ``150``), since JSON does not say whether ``150`` is an int or a double;
* ``==`` between values of unrelated types is ``false`` (and ``!=`` is ``true``) instead of an
  error.
"""

from __future__ import annotations

import base64
import enum
import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELFunction, Result

from stepwell.errors import ConfigError, StepwellError

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*"
_PATH_RE = re.compile(_PATH)
_EQUALITY_RE = re.compile(rf"\s*({_PATH})\s*==\s*({_PATH})\s*")
_SCOPES = ("event", "async")
_MAX_MESSAGE = 300


class ExpressionError(StepwellError):
    """A CEL expression failed while being evaluated (missing key, type mismatch, …)."""

    code = "expression_error"
    retriable = False


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""Returned by :func:`lookup_path` when the path does not lead to a value."""


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression; build it with :func:`compile_expression`."""

    source: str
    """The expression as written."""
    _runner: celpy.Runner = field(repr=False, compare=False)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate with the given variables and return a plain Python value.

        Args:
            variables: names to JSON-like values (dicts, lists, str, int, float, bool, None),
                e.g. ``{"event": {...}, "async": {...}}``.

        Returns:
            ``bool``, ``int``, ``float``, ``str``, ``None``, or lists and dicts of those.
            Timestamps, durations and bytes, which JSON lacks, come back as strings (RFC 3339,
            CEL duration such as ``"90s"``, and base64, as celpy's JSON encoder writes them).

        Raises:
            ExpressionError: evaluation failed (a missing key, a type mismatch, a division by
                zero) or a variable is not JSON-like.
        """
        try:
            activation = {name: json_to_cel(value) for name, value in variables.items()}
            result = self._runner.evaluate(activation)
        except CELEvalError as exc:
            raise self._error(exc) from None
        except Exception as exc:
            # celpy lets plain Python errors escape from its internals; a user's expression must
            # surface as an ExpressionError, never crash the loop evaluating it.
            raise ExpressionError(f"expression {self.source!r} failed: {exc!r}") from exc
        if isinstance(result, CELEvalError):
            raise self._error(result)
        return _to_python(result, self.source)

    def matches(self, variables: Mapping[str, Any]) -> bool:
        """Whether the expression evaluates to exactly ``true``.

        Any other result, and any evaluation error (such as a missing key), is ``False``: an
        event that lacks a field simply does not match.
        """
        try:
            return self.evaluate(variables) is True
        except ExpressionError:
            return False

    def _error(self, exc: CELEvalError) -> ExpressionError:
        detail = str(exc.args[0]) if exc.args else repr(exc)
        # celpy's "undeclared reference" message dumps the whole activation.
        detail = detail.split(" (in activation", 1)[0][:_MAX_MESSAGE]
        return ExpressionError(f"expression {self.source!r} failed: {detail}")


def compile_expression(source: str, *, field: str = "expression") -> Expression:
    """Compile a CEL expression, reusing an earlier compilation of the same text.

    Args:
        source: the CEL text.
        field: the option it came from, quoted in error messages.

    Raises:
        ConfigError: the text is empty or not valid CEL.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(
            f"{field}: invalid expression {source!r}: it is empty; "
            "write CEL such as \"event.data.plan == 'pro'\""
        )
    try:
        return _compile(source)
    except CELParseError as exc:
        raise ConfigError(
            f"{field}: invalid expression {source!r}: syntax error\n{str(exc).rstrip()}"
        ) from None
    except RecursionError:
        raise ConfigError(f"{field}: invalid expression {source!r}: nested too deeply") from None


def match_expression(path: str, *, field: str = "match") -> str:
    """Turn a ``match`` path into the expression it stands for.

    ``"data.order_id"`` becomes ``"event.data.order_id == async.data.order_id"``: the trigger
    and the incoming event must agree on that field.

    Raises:
        ConfigError: the path is not dotted identifiers, or starts with ``event.``/``async.``
            (the prefix is added here).
    """
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise ConfigError(
            f'{field}: invalid path {path!r}: use dotted identifiers such as "data.order_id"'
        )
    scope = path.split(".", 1)[0]
    if scope in _SCOPES:
        raise ConfigError(
            f"{field}: invalid path {path!r}: drop the {scope!r} prefix; "
            f'write "data.order_id", which compares event.data.order_id with async.data.order_id'
        )
    source = f"event.{path} == async.{path}"
    compile_expression(source, field=field)
    return source


def equality_paths(source: str) -> tuple[str, str] | None:
    """Split an ``event.<path> == async.<path>`` expression into its two paths.

    Either side may come first and whitespace is free: ``async.data.x == event.data.y`` gives
    ``("data.y", "data.x")``. The engine uses this to index waits by key instead of evaluating
    every wait against every event.

    Returns:
        ``(event_path, async_path)`` without their ``event.``/``async.`` prefixes, or ``None``
        when the expression is anything else.
    """
    found = _EQUALITY_RE.fullmatch(source)
    if found is None:
        return None
    left, right = found.group(1), found.group(2)
    if right.startswith("event.") and left.startswith("async."):
        left, right = right, left
    if left.startswith("event.") and right.startswith("async."):
        return left.removeprefix("event."), right.removeprefix("async.")
    return None


def lookup_path(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path through nested mappings, or :data:`MISSING`.

    ``lookup_path({"data": {"id": 7}}, "data.id")`` is ``7``. Only mappings are walked; a
    segment that meets a list, a scalar or an absent key gives :data:`MISSING`.
    """
    current: Any = obj
    for key in path.split("."):
        if type(current) is dict:  # what JSON gives: spare the slower Mapping check
            current = current.get(key, MISSING)
            if current is MISSING:
                return MISSING
        elif isinstance(current, Mapping) and key in current:
            current = current[key]
        else:
            return MISSING
    return current


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Expression:
    return Expression(source, _ENVIRONMENT.program(_ENVIRONMENT.compile(source), _FUNCTIONS))


def _relation(compare: Callable[[Any, Any], bool], mismatch: bool | None) -> CELFunction:
    def relation(left: Result, right: Result) -> Result:
        if isinstance(left, CELEvalError):
            return left
        if isinstance(right, CELEvalError):
            return right
        if isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS):
            # Python compares int with float exactly, which is what CEL asks for.
            return celtypes.BoolType(compare(_plain_number(left), _plain_number(right)))
        try:
            return celtypes.BoolType(compare(left, right))
        except TypeError:
            if mismatch is None:
                raise
            return celtypes.BoolType(mismatch)

    return relation


def _plain_number(value: Any) -> int | float:
    return int(value) if isinstance(value, int) else float(value)


def _to_python(value: Any, source: str) -> Any:
    # celpy mixes its own types with plain ones (concatenation gives a plain str), so test the
    # plain bases. BoolType is an int subclass, hence first; timestamps and durations have no
    # JSON form and become the strings CEL itself prints.
    if value is None:
        return None
    if isinstance(value, bool | celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.TimestampType | celtypes.DurationType):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_to_python(item, source) for item in value]
    if isinstance(value, dict):
        return {_to_python(k, source): _to_python(v, source) for k, v in value.items()}
    raise ExpressionError(
        f"expression {source!r} returned a {type(value).__name__}, which has no JSON form"
    )


_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_FUNCTIONS: dict[str, CELFunction] = {
    "_==_": _relation(operator.eq, mismatch=False),
    "_!=_": _relation(operator.ne, mismatch=True),
    "_<_": _relation(operator.lt, mismatch=None),
    "_<=_": _relation(operator.le, mismatch=None),
    "_>_": _relation(operator.gt, mismatch=None),
    "_>=_": _relation(operator.ge, mismatch=None),
}
# One environment for every expression: creating one raises the recursion limit as a side effect.
_ENVIRONMENT = celpy.Environment()

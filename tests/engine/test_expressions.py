from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwell.engine.expressions import (
    MISSING,
    Expression,
    ExpressionError,
    compile_expression,
    equality_paths,
    lookup_path,
    match_expression,
)
from stepwell.errors import ConfigError, StepwellError

ORDER: dict[str, Any] = {
    "name": "shop/order.placed",
    "data": {
        "id": "ord_42",
        "user_id": "usr_7",
        "plan": "pro",
        "amount": 150,
        "price": 19.5,
        "currency": "EUR",
        "tags": ["vip", "repeat"],
        "items": [{"sku": "A"}, {"sku": "B"}, {"sku": "C"}],
        "coupon": None,
        "gift": False,
        "address": {"city": "Lyon", "zip": "69001"},
    },
}
PAYMENT: dict[str, Any] = {"name": "shop/payment.settled", "data": {"id": "ord_42", "ok": True}}
VARIABLES = {"event": ORDER, "async": PAYMENT}


# --- compiling -----------------------------------------------------------------------------


def test_compiled_expressions_are_cached_by_source() -> None:
    first = compile_expression("event.data.plan == 'pro'")
    assert compile_expression("event.data.plan == 'pro'") is first
    assert isinstance(first, Expression)
    assert first.source == "event.data.plan == 'pro'"


@pytest.mark.parametrize("source", ["event.data.plan ==", "1 +", "a b", "event..data", "(1"])
def test_syntax_errors_raise_config_error_naming_field_and_expression(source: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_expression(source, field="triggers[0].expression")
    message = str(caught.value)
    assert message.startswith(
        f"triggers[0].expression: invalid expression {source!r}: syntax error"
    )
    # celpy's own message points at the offending column.
    assert "^" in message


@pytest.mark.parametrize("source", ["", "   \n"])
def test_empty_expressions_are_config_errors(source: str) -> None:
    with pytest.raises(ConfigError, match=r"^if: invalid expression .*: it is empty"):
        compile_expression(source, field="if")


def test_default_field_name_is_expression() -> None:
    with pytest.raises(ConfigError, match=r"^expression: "):
        compile_expression("==")


# --- evaluating ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.data.plan == 'pro'", True),
        ("event.data.plan == 'free'", False),
        ('event.data.amount > 100 && event.data.currency == "EUR"', True),
        ('event.data.amount > 200 && event.data.currency == "EUR"', False),
        ("event.data.id == async.data.id", True),
        ("'vip' in event.data.tags", True),
        ("'new' in event.data.tags", False),
        ("size(event.data.items) > 2", True),
        ("event.data.items[1].sku == 'B'", True),
        ("event.data.address.city.startsWith('Ly')", True),
        ("has(event.data.coupon)", True),
        ("has(event.data.discount)", False),
        ("event.data.coupon == null", True),
        ("!event.data.gift", True),
        ("event.name.startsWith('shop/')", True),
        ("event.data.items.exists(i, i.sku == 'C')", True),
        ("event.data.items.all(i, i.sku != 'Z')", True),
    ],
)
def test_boolean_expressions(source: str, expected: bool) -> None:
    expression = compile_expression(source)
    assert expression.evaluate(VARIABLES) is expected
    assert expression.matches(VARIABLES) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.data.user_id", "usr_7"),
        ("event.data.amount", 150),
        ("event.data.price", 19.5),
        ("event.data.coupon", None),
        ("event.data.tags", ["vip", "repeat"]),
        ("event.data.address", {"city": "Lyon", "zip": "69001"}),
        ("event.data.amount * 2", 300),
        ("event.data.user_id + ':' + event.data.id", "usr_7:ord_42"),
        ("event.data.plan == 'pro' ? 120 : 0", 120),
        ("size(event.data.items)", 3),
        ("{'a': [1, 2.5, 'x', null, true]}", {"a": [1, 2.5, "x", None, True]}),
        ("7u", 7),
        ("duration('90s')", "90s"),
        ("timestamp('2030-01-01T09:00:00Z')", "2030-01-01T09:00:00Z"),
        ("b'abc'", "YWJj"),
    ],
)
def test_values_come_back_as_plain_python(source: str, expected: Any) -> None:
    result = compile_expression(source).evaluate(VARIABLES)
    assert result == expected
    assert type(result) is type(expected)


def test_nested_results_hold_only_plain_python_types() -> None:
    result = compile_expression("event.data").evaluate(VARIABLES)
    assert result == ORDER["data"]

    def plain(value: Any) -> bool:
        if isinstance(value, list):
            return all(plain(item) for item in value)
        if isinstance(value, dict):
            return all(type(k) is str and plain(v) for k, v in value.items())
        return value is None or type(value) in (bool, int, float, str)

    assert plain(result)


def test_non_boolean_results_do_not_match() -> None:
    assert compile_expression("event.data.user_id").matches(VARIABLES) is False
    assert compile_expression("1").matches(VARIABLES) is False
    assert compile_expression("'true'").matches(VARIABLES) is False


@pytest.mark.parametrize(
    ("source", "detail"),
    [
        ("event.data.missing == 1", "no such member in mapping: 'missing'"),
        ("event.data.address.country == 'FR'", "no such member in mapping: 'country'"),
        ("nothing.data.id == 1", "undeclared reference to 'nothing'"),
        ("event.data.amount / 0 > 1", "divide by zero"),
        ("event.data.amount < 'x'", "no matching overload"),
        ("type(1)", "returned a type"),
    ],
)
def test_evaluation_errors_raise_expression_error_and_do_not_match(
    source: str, detail: str
) -> None:
    expression = compile_expression(source)
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate(VARIABLES)
    assert source in str(caught.value)
    assert detail in str(caught.value)
    # The activation dump celpy appends to unknown names is cut off.
    assert "Activation(" not in str(caught.value)
    assert expression.matches(VARIABLES) is False


def test_expression_error_is_a_non_retriable_stepwell_error() -> None:
    assert issubclass(ExpressionError, StepwellError)
    assert ExpressionError.code == "expression_error"
    assert ExpressionError.retriable is False


def test_variables_that_are_not_json_like_are_expression_errors() -> None:
    expression = compile_expression("event.data.x == 1")
    bad = {"event": {"data": {"x": object()}}}
    with pytest.raises(ExpressionError):
        expression.evaluate(bad)
    assert expression.matches(bad) is False


def test_missing_variable_does_not_match() -> None:
    expression = compile_expression("event.data.id == async.data.id")
    assert expression.matches({"event": ORDER}) is False


def test_numbers_compare_across_int_and_double() -> None:
    assert compile_expression("event.data.amount > 100.0").evaluate(VARIABLES) is True
    assert compile_expression("event.data.amount == 150.0").evaluate(VARIABLES) is True
    assert compile_expression("event.data.price < 20").evaluate(VARIABLES) is True
    assert compile_expression("event.data.price >= 19.5").evaluate(VARIABLES) is True
    assert compile_expression("event.data.amount == 150u").evaluate(VARIABLES) is True
    assert compile_expression("event.data.amount != 150.5").evaluate(VARIABLES) is True


def test_equality_of_unrelated_types_is_false_not_an_error() -> None:
    assert compile_expression("event.data.amount == '150'").evaluate(VARIABLES) is False
    assert compile_expression("event.data.amount != '150'").evaluate(VARIABLES) is True
    assert compile_expression("event.data.plan != null").evaluate(VARIABLES) is True


def test_the_same_expression_evaluates_against_many_events() -> None:
    expression = compile_expression("event.data.plan == 'pro'")
    plans = ["pro", "free", "pro", "team"]
    results = [expression.matches({"event": {"data": {"plan": p}}}) for p in plans]
    assert results == [True, False, True, False]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(-(2**53), 2**53))
def test_integer_comparison_agrees_with_python(a: int, b: int) -> None:
    variables = {"event": {"data": {"a": a, "b": b}}}
    assert compile_expression("event.data.a < event.data.b").evaluate(variables) is (a < b)
    assert compile_expression("event.data.a == event.data.b").evaluate(variables) is (a == b)


@given(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False))
def test_mixed_number_comparison_agrees_with_python(a: int, b: float) -> None:
    variables = {"event": {"data": {"a": a, "b": b}}}
    assert compile_expression("event.data.a < event.data.b").evaluate(variables) is (a < b)
    assert compile_expression("event.data.b <= event.data.a").evaluate(variables) is (b <= a)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_json_values_round_trip_through_an_expression(value: Any) -> None:
    assert compile_expression("event.data.value").evaluate(
        {"event": {"data": {"value": value}}}
    ) == (value)


# --- match paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("data.order_id", "event.data.order_id == async.data.order_id"),
        ("data.user.id", "event.data.user.id == async.data.user.id"),
        ("user", "event.user == async.user"),
    ],
)
def test_match_paths_become_equality_expressions(path: str, source: str) -> None:
    assert match_expression(path) == source
    assert compile_expression(source).matches(
        {
            "event": {"data": {"order_id": 1, "user": {"id": 2}}, "user": 3},
            "async": {"data": {"order_id": 1, "user": {"id": 2}}, "user": 3},
        }
    )


@pytest.mark.parametrize(
    "path",
    ["", "data.", ".data", "data..id", "data.order-id", "data id", " data.id", "1st", "data.*"],
)
def test_bad_match_paths_are_config_errors(path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        match_expression(path, field="cancel[0].match")
    assert str(caught.value).startswith(f"cancel[0].match: invalid path {path!r}")


@pytest.mark.parametrize("path", ["event.data.id", "async.data.id"])
def test_match_paths_must_not_carry_the_scope(path: str) -> None:
    with pytest.raises(ConfigError, match="drop the"):
        match_expression(path)


def test_match_expression_matches_equal_fields_only() -> None:
    expression = compile_expression(match_expression("data.id"))
    assert expression.matches(VARIABLES) is True
    assert expression.matches({"event": ORDER, "async": {"data": {"id": "ord_43"}}}) is False
    assert expression.matches({"event": ORDER, "async": {"data": {}}}) is False


# --- equality paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "paths"),
    [
        ("event.data.id == async.data.id", ("data.id", "data.id")),
        ("async.data.x == event.data.y", ("data.y", "data.x")),
        ("  event.data.user.id==async.data.owner_id  ", ("data.user.id", "data.owner_id")),
        ("event.data.id\n==\tasync.data.id", ("data.id", "data.id")),
        ("event.id == async.id", ("id", "id")),
    ],
)
def test_equality_paths_are_extracted(source: str, paths: tuple[str, str]) -> None:
    assert equality_paths(source) == paths


@pytest.mark.parametrize(
    "source",
    [
        "event.data.id == event.data.other",
        "async.data.id == async.data.id",
        "event.data.id != async.data.id",
        "event.data.id == async.data.id && event.data.plan == 'pro'",
        "event.data.id == 'x'",
        "event == async",
        "event.data.id == async",
        "events.data.id == async.data.id",
        "(event.data.id == async.data.id)",
        "event.data['id'] == async.data.id",
        "",
    ],
)
def test_anything_but_one_event_async_equality_gives_none(source: str) -> None:
    assert equality_paths(source) is None


def test_equality_paths_of_a_match_expression_are_the_path_twice() -> None:
    assert equality_paths(match_expression("data.order_id")) == ("data.order_id", "data.order_id")


# --- lookup paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.id", "ord_42"),
        ("data.address.city", "Lyon"),
        ("data.coupon", None),
        ("data.gift", False),
        ("data.tags", ["vip", "repeat"]),
        ("name", "shop/order.placed"),
    ],
)
def test_lookup_path_finds_values(path: str, expected: Any) -> None:
    assert lookup_path(ORDER, path) == expected


@pytest.mark.parametrize(
    "path", ["data.missing", "data.address.country", "data.id.length", "data.tags.0", "nothing"]
)
def test_lookup_path_returns_missing(path: str) -> None:
    assert lookup_path(ORDER, path) is MISSING


def test_missing_is_distinct_from_none_and_prints_plainly() -> None:
    assert MISSING is not None
    assert repr(MISSING) == "MISSING"


@given(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), min_size=1, max_size=5))
def test_lookup_path_agrees_with_cel_member_access(keys: list[str]) -> None:
    nested: Any = "leaf"
    for key in reversed(keys):
        nested = {key: nested}
    path = ".".join(keys)
    assert lookup_path(nested, path) == "leaf"
    try:
        compiled = compile_expression(f"doc.{path}")
    except ConfigError:
        # A CEL reserved word such as "in" cannot be a member name in CEL.
        return
    assert compiled.evaluate({"doc": nested}) == "leaf"

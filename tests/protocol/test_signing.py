"""Signatures, bearer tokens, key validation, and the RFC 8785 canonical JSON they are made over."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwell.errors import ConfigError
from stepwell.protocol.canonical_json import canonical_json, exact, format_number
from stepwell.protocol.signing import (
    bearer_token,
    sign,
    strip_prefix,
    validate_signing_key,
    verify_bearer,
    verify_signature,
)

KEY = "signkey-test-12345678"
FALLBACK = "signkey-test-abcdef0123456789"
T = 1_700_000_000
# HMAC-SHA256(key=b"12345678", msg=b'{"a":1}1700000000'), computed with `openssl dgst -hmac`.
SIGNATURE = "t=1700000000&s=67a82077baa52522b1f612a154a25275c00a0338efc32be5ee396bd2391ba5e0"
# SHA-256 of the bytes 12 34 56 78, computed with `openssl dgst -sha256`.
BEARER = "b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "stripped"),
    [
        ("signkey-prod-abcd", "abcd"),
        ("signkey-test-12345678", "12345678"),
        ("signkey-branch_1-00ff", "00ff"),
        ("abcd", "abcd"),
        ("signkey-prod-", ""),
    ],
)
def test_strip_prefix_removes_only_the_signkey_env_prefix(key: str, stripped: str) -> None:
    assert strip_prefix(key) == stripped


@pytest.mark.parametrize(
    "key", ["signkey-prod-00", "signkey-test-ABCdef0123", "signkey-x-" + "ab" * 32]
)
def test_well_formed_signing_keys_are_accepted(key: str) -> None:
    assert validate_signing_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "abcd",  # no prefix
        "signkey-prod-abc",  # odd length
        "signkey-prod-xyz0",  # not hex
        "signkey-prod-",  # empty
        "sk-prod-abcd",
        "signkey--abcd",
    ],
)
def test_malformed_signing_keys_are_refused_with_a_hint(key: str) -> None:
    with pytest.raises(ConfigError, match="signkey-<env>-<hex>"):
        validate_signing_key(key)


# -- signatures ----------------------------------------------------------------------------------


def test_sign_matches_a_fixed_hmac_vector() -> None:
    assert sign(b'{"a":1}', KEY, T) == SIGNATURE


def test_signature_key_is_the_hex_text_not_the_decoded_bytes() -> None:
    # Same hex digits with and without the prefix: same MAC.
    assert sign(b"x", "12345678", T) == sign(b"x", KEY, T)


def test_a_valid_signature_verifies() -> None:
    assert verify_signature(b'{"a":1}', SIGNATURE, [KEY], T)


def test_the_fallback_key_is_tried_after_the_primary() -> None:
    header = sign(b"body", FALLBACK, T)
    assert verify_signature(b"body", header, [KEY, FALLBACK], T)
    assert not verify_signature(b"body", header, [KEY], T)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "s=67a82077baa52522b1f612a154a25275c00a0338efc32be5ee396bd2391ba5e0",
        "t=1700000000",
        "t=abc&s=67a8",
        "t=1700000000&s=" + "0" * 64,
        "t=1700000001&s=67a82077baa52522b1f612a154a25275c00a0338efc32be5ee396bd2391ba5e0",
        "t=1700000000&s=é",
    ],
)
def test_missing_malformed_or_wrong_signatures_fail(header: str | None) -> None:
    assert not verify_signature(b'{"a":1}', header, [KEY], T)


def test_a_changed_body_fails() -> None:
    assert not verify_signature(b'{"a":2}', SIGNATURE, [KEY], T)


def test_no_keys_means_no_valid_signature() -> None:
    assert not verify_signature(b'{"a":1}', SIGNATURE, [], T)


def test_signatures_older_or_newer_than_the_window_fail() -> None:
    assert verify_signature(b'{"a":1}', SIGNATURE, [KEY], T + 300)
    assert verify_signature(b'{"a":1}', SIGNATURE, [KEY], T - 300)
    assert not verify_signature(b'{"a":1}', SIGNATURE, [KEY], T + 301)
    assert not verify_signature(b'{"a":1}', SIGNATURE, [KEY], T - 301)
    assert verify_signature(b'{"a":1}', SIGNATURE, [KEY], T + 10**6, max_age_s=None)


@given(body=st.binary(max_size=200), now=st.integers(min_value=0, max_value=2**40))
def test_whatever_is_signed_verifies_with_the_same_key(body: bytes, now: int) -> None:
    assert verify_signature(body, sign(body, KEY, now), [KEY], now)
    assert not verify_signature(body + b" ", sign(body, KEY, now), [KEY], now)


# -- bearer tokens -------------------------------------------------------------------------------


def test_bearer_token_is_sha256_of_the_decoded_key() -> None:
    assert bearer_token("signkey-prod-12345678") == BEARER
    assert bearer_token("12345678") == BEARER


def test_bearer_token_of_a_non_hex_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not hex"):
        bearer_token("signkey-prod-nothex")


@pytest.mark.parametrize(
    "token",
    [BEARER, f"signkey-prod-{BEARER}", f"signkey-test-{BEARER}", f"  {BEARER} "],
)
def test_bearer_is_accepted_in_the_python_and_typescript_forms(token: str) -> None:
    assert verify_bearer(token, [KEY])


def test_bearer_checks_the_fallback_and_skips_malformed_keys() -> None:
    assert verify_bearer(bearer_token(FALLBACK), ["signkey-prod-nothex", KEY, FALLBACK])
    assert not verify_bearer(bearer_token(FALLBACK), [KEY])
    assert not verify_bearer("12345678", [KEY])  # the raw key is not its token
    assert not verify_bearer("", [KEY])


# -- RFC 8785 canonical JSON ---------------------------------------------------------------------

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
RFC_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), RFC_NUMBERS)
def test_numbers_are_written_as_ecmascript_writes_them(bits: str, text: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(value) == text
    assert canonical_json(value) == text.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinities_are_refused(bits: str) -> None:
    with pytest.raises(ValueError):
        canonical_json([struct.unpack(">d", bytes.fromhex(bits))[0]])


def test_rfc_8785_example_object() -> None:
    # RFC 8785 §3.2.2: the example input (as parsed) and its canonical form.
    parsed = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(parsed) == expected.encode()


def test_rfc_8785_property_sorting_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: an astral character (a surrogate pair, 0xD83D…) sorts before U+FB33.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\x80": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    text = canonical_json(value).decode()
    names = list(json.loads(text))
    assert names == ["\r", "1", "\x80", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-17, "-17"),
        (2**64, "18446744073709551616"),  # beyond I-JSON: all digits kept, nothing rounded
        (1.0, "1"),
        (-0.0, "0"),
        (1e-7, "1e-7"),
        (123e18, "123000000000000000000"),
        ("", '""'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ("\b\t\n\f\r", '"\\b\\t\\n\\f\\r"'),
        ("\u2028é/", '"\u2028é/"'),
        ([], "[]"),
        ({}, "{}"),
        ((1, [2, {"b": 1, "a": 2}]), '[1,[2,{"a":2,"b":1}]]'),
    ],
)
def test_values_and_escapes(value: Any, text: str) -> None:
    assert canonical_json(value) == text.encode()


@pytest.mark.parametrize("value", [{1: "a"}, {"a": object()}, [b"bytes"], {"a": {1.5}}])
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json("\ud800")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=5), children, max_size=5
        )
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return float(a) == float(b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(JSON)
def test_canonical_json_round_trips_through_a_json_parser(value: Any) -> None:
    assert _same(json.loads(canonical_json(value)), value)


@given(JSON)
def test_canonical_json_is_idempotent(value: Any) -> None:
    once = canonical_json(value)
    assert canonical_json(json.loads(once)) == once


@given(JSON)
def test_canonical_json_ignores_key_order_and_whitespace(value: Any) -> None:
    pretty = json.dumps(value, indent=3, sort_keys=False)
    reordered = json.loads(pretty, object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert canonical_json(reordered) == canonical_json(value)


@given(JSON)
def test_canonical_json_agrees_with_the_jcs_package_the_python_sdk_uses(value: Any) -> None:
    jcs = pytest.importorskip("jcs")
    assert canonical_json(value) == jcs.canonicalize(value)


WITHOUT_FLOATS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=5), children, max_size=5
        )
    ),
    max_leaves=30,
)


@settings(max_examples=500)
@given(JSON | WITHOUT_FLOATS)
def test_the_fast_path_writes_exactly_what_the_exact_writer_does(value: Any) -> None:
    # values without floats go through orjson; the bytes must not differ by one
    assert canonical_json(value) == exact(value)

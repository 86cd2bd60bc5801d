"""Signing keys, request signatures and bearer tokens, as Inngest's protocol defines them.

A signing key reads ``signkey-<env>-<hex>`` (``signkey-prod-9f8e…``). Its ``signkey-<env>-``
prefix is stripped before any cryptography (PROTOCOL.md §1.2). Then:

* a **signature** (``X-Inngest-Signature``, on the engine's requests and the SDK's answers) is
  ``t=<unix seconds>&s=<hex HMAC-SHA256>``, keyed with the UTF-8 bytes of the hex text (not the
  decoded bytes), over the body followed by the decimal timestamp;
* a **bearer token** (``Authorization: Bearer …`` on the SDK's calls to the engine's API) is the
  hex SHA-256 of the hex-*decoded* key.

Pure functions; no clock is read here, callers pass ``now_s``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import parse_qs

from stepwell.errors import ConfigError

__all__ = [
    "bearer_token",
    "sign",
    "strip_prefix",
    "validate_signing_key",
    "verify_bearer",
    "verify_signature",
]

_PREFIX = re.compile(r"^signkey-\w+-")
_KEY = re.compile(r"^signkey-\w+-((?:[0-9a-fA-F]{2})+)$")


def strip_prefix(key: str) -> str:
    """``key`` without its ``signkey-<env>-`` prefix (unchanged when it has none)."""
    return _PREFIX.sub("", key, count=1)


def validate_signing_key(key: str) -> str:
    """Return ``key`` if it reads ``signkey-<env>-<hex>`` with an even number of hex digits.

    Raises:
        ConfigError: anything else. The official Python SDK hex-decodes the key to build its
            bearer token and crashes on a key that is not hex, so a bad key is refused early.
    """
    if not isinstance(key, str) or not _KEY.match(key.strip()):
        shown = key[:16] + "…" if isinstance(key, str) and len(key) > 16 else key
        raise ConfigError(
            f"signing key {shown!r} is not of the form signkey-<env>-<hex> with an even number "
            "of hex digits; generate one with: echo signkey-prod-$(openssl rand -hex 32)"
        )
    return key.strip()


def sign(body: bytes, key: str, now_s: int) -> str:
    """The ``X-Inngest-Signature`` value for ``body`` at unix time ``now_s``."""
    return f"t={now_s}&s={_mac(body, key, str(now_s))}"


def verify_signature(
    body: bytes,
    header: str | None,
    keys: Sequence[str],
    now_s: int,
    max_age_s: int | None = 300,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` by any of ``keys``.

    Args:
        body: the exact bytes that were signed.
        header: the ``X-Inngest-Signature`` value, ``t=<s>&s=<hex>``.
        keys: the primary signing key, then a fallback during rotation; tried in order.
        now_s: the current unix time in seconds.
        max_age_s: reject signatures whose ``t`` is further than this from ``now_s`` in either
            direction (the TypeScript SDK's replay window is five minutes); None disables the
            check (the Python SDK does not make it).
    """
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, signature = parsed
    if max_age_s is not None and abs(now_s - int(timestamp)) > max_age_s:
        return False
    return any(hmac.compare_digest(_mac(body, key, timestamp), signature) for key in keys if key)


def bearer_token(key: str) -> str:
    """The token the SDK sends as ``Authorization: Bearer <token>`` to the engine's API.

    The hex SHA-256 of the hex-decoded key, without any prefix. The official SDKs differ in
    form: the Python SDK sends exactly this; the TypeScript SDK re-attaches the key's prefix
    (``signkey-prod-<sha256 hex>``). :func:`verify_bearer` accepts both.

    Raises:
        ConfigError: the key (without its prefix) is not an even-length hex string.
    """
    raw = strip_prefix(key.strip())
    try:
        decoded = bytes.fromhex(raw)
    except ValueError:
        raise ConfigError(
            "a signing key must be signkey-<env>-<hex>: its part after the prefix is not hex"
        ) from None
    return hashlib.sha256(decoded).hexdigest()


def verify_bearer(token: str, keys: Sequence[str]) -> bool:
    """Whether ``token`` is the bearer token of any of ``keys``, with or without a prefix."""
    candidate = strip_prefix(token.strip())
    for key in keys:
        try:
            expected = bearer_token(key)
        except ConfigError:
            continue
        if hmac.compare_digest(expected, candidate):
            return True
    return False


def _mac(body: bytes, key: str, timestamp: str) -> str:
    secret = strip_prefix(key.strip()).encode("utf-8")
    return hmac.new(secret, body + timestamp.encode("ascii"), hashlib.sha256).hexdigest()


def _parse(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    fields = parse_qs(header.strip(), keep_blank_values=True)
    timestamps, signatures = fields.get("t"), fields.get("s")
    if not timestamps or not signatures:
        return None
    timestamp, signature = timestamps[0], signatures[0]
    if not timestamp.isascii() or not timestamp.isdigit() or not signature.isascii():
        return None
    return timestamp, signature

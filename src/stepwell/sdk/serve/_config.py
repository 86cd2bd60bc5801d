"""How a served app is configured: arguments first, then the environment, as the official SDKs do.

Every setting can be given to :class:`~stepwell.sdk.serve.ServeHandler` (and so to every
adapter) or read from the environment; Inngest's variable names are honoured so an app can move
between the official SDKs and stepwell without touching its deployment:

=========================  ==========================================================================
setting                    environment (first set wins)
=========================  ==========================================================================
mode                       ``STEPWELL_DEV``, ``INNGEST_DEV``: truthy (``1``, ``true``) or a URL → dev
signing key                ``INNGEST_SIGNING_KEY``, ``STEPWELL_SIGNING_KEY`` (required in cloud mode)
fallback key               ``INNGEST_SIGNING_KEY_FALLBACK``, ``STEPWELL_SIGNING_KEY_FALLBACK``
API origin                 ``INNGEST_API_BASE_URL``, ``INNGEST_BASE_URL``, ``STEPWELL_URL``, dev URL
event origin               ``INNGEST_EVENT_API_BASE_URL``, ``INNGEST_BASE_URL``, ``STEPWELL_URL``, dev URL
event key                  ``INNGEST_EVENT_KEY``, ``STEPWELL_EVENT_KEY``
serve origin / path        ``INNGEST_SERVE_ORIGIN`` / ``INNGEST_SERVE_PATH`` (and ``STEPWELL_…``)
branch environment         ``INNGEST_ENV``
unsigned out-of-band sync  ``INNGEST_ENABLE_UNAUTHED_SYNC`` (default allowed)
=========================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from stepwell.errors import ConfigError
from stepwell.protocol.signing import validate_signing_key

Mode = Literal["dev", "cloud"]

DEFAULT_ORIGIN = "http://127.0.0.1:8288"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The resolved settings of one serve endpoint.

    Attributes:
        mode: ``"dev"`` (no signatures checked or made) or ``"cloud"`` (production).
        framework: the web framework's name, sent as ``X-Inngest-Framework``.
        signing_key: verifies the engine's requests and signs the answers; required in cloud.
        signing_key_fallback: also accepted during key rotation.
        api_origin: where ``/fn/register`` and ``/v0/runs/...`` live.
        event_origin: where ``POST /e/{key}`` lives (``step.send_event``, ``app.send``).
        event_key: the key in that path; None lets the app's sender pick its default.
        serve_url: the full URL the engine should call, when set; overrides the two below.
        serve_origin: replaces the scheme and host of the URL the request came in on.
        serve_path: replaces its path.
        env: the branch environment, sent as ``X-Inngest-Env``.
        allow_unsigned_sync: whether an unsigned ``PUT`` may trigger an out-of-band sync in cloud
            mode (harmless: the sync itself is authenticated with the signing key).
        max_signature_age_s: how far a request signature's time may be from ours, in seconds;
            None accepts any age.
    """

    mode: Mode
    framework: str
    signing_key: str | None
    signing_key_fallback: str | None
    api_origin: str
    event_origin: str
    event_key: str | None
    serve_url: str | None = None
    serve_origin: str | None = None
    serve_path: str | None = None
    env: str | None = None
    allow_unsigned_sync: bool = True
    max_signature_age_s: int | None = 300

    @property
    def keys(self) -> list[str]:
        """The signing keys to verify with, primary first."""
        return [k for k in (self.signing_key, self.signing_key_fallback) if k]


def resolve_config(
    *,
    framework: str,
    mode: Mode | None = None,
    signing_key: str | None = None,
    signing_key_fallback: str | None = None,
    api_base_url: str | None = None,
    event_api_base_url: str | None = None,
    event_key: str | None = None,
    serve_url: str | None = None,
    serve_origin: str | None = None,
    serve_path: str | None = None,
    env: str | None = None,
    max_signature_age_s: int | None = 300,
    environ: Mapping[str, str] | None = None,
) -> ServeConfig:
    """Combine arguments and environment into a :class:`ServeConfig`.

    Raises:
        ConfigError: cloud mode without a signing key, a malformed key, or a bad ``mode``.
    """
    environ = os.environ if environ is None else environ
    dev_flag = _first(environ, "STEPWELL_DEV", "INNGEST_DEV")
    dev_url = _dev_url(dev_flag)
    if mode is None:
        mode = "dev" if dev_flag is not None and dev_flag.strip().lower() not in _FALSE else "cloud"
    if mode not in ("dev", "cloud"):
        raise ConfigError(f"serve mode must be 'dev' or 'cloud', not {mode!r}")
    key = signing_key or _first(environ, "INNGEST_SIGNING_KEY", "STEPWELL_SIGNING_KEY")
    fallback = signing_key_fallback or _first(
        environ, "INNGEST_SIGNING_KEY_FALLBACK", "STEPWELL_SIGNING_KEY_FALLBACK"
    )
    if mode == "cloud" and not key:
        raise ConfigError(
            "serving in production (cloud) mode needs a signing key: set INNGEST_SIGNING_KEY "
            "(or STEPWELL_SIGNING_KEY) to the engine's signkey-<env>-<hex>, or set "
            "INNGEST_DEV=1 for local development"
        )
    for k in (key, fallback):
        if k:
            validate_signing_key(k)
    base = _first(environ, "INNGEST_BASE_URL", "STEPWELL_URL")
    api = api_base_url or _first(environ, "INNGEST_API_BASE_URL") or base or dev_url
    events = event_api_base_url or _first(environ, "INNGEST_EVENT_API_BASE_URL") or base or dev_url
    enable_unsigned = _first(environ, "INNGEST_ENABLE_UNAUTHED_SYNC")
    return ServeConfig(
        mode=mode,
        framework=framework,
        signing_key=key,
        signing_key_fallback=fallback,
        api_origin=_origin(api, mode),
        event_origin=_origin(events, mode),
        event_key=event_key or _first(environ, "INNGEST_EVENT_KEY", "STEPWELL_EVENT_KEY"),
        serve_url=serve_url,
        serve_origin=serve_origin
        or _first(environ, "INNGEST_SERVE_ORIGIN", "STEPWELL_SERVE_ORIGIN"),
        serve_path=serve_path or _first(environ, "INNGEST_SERVE_PATH", "STEPWELL_SERVE_PATH"),
        env=env or _first(environ, "INNGEST_ENV"),
        allow_unsigned_sync=enable_unsigned is None or enable_unsigned.lower() not in _FALSE,
        max_signature_age_s=max_signature_age_s,
    )


def serve_url_for(config: ServeConfig, request_url: str) -> str:
    """The URL the engine should call: the request's URL without its query, with the configured
    origin and path swapped in (needed behind proxies and in containers)."""
    if config.serve_url:
        return config.serve_url
    parts = urlsplit(request_url)
    scheme, netloc, path = parts.scheme, parts.netloc, parts.path
    if config.serve_origin:
        origin = config.serve_origin.rstrip("/")
        if "://" not in origin:
            origin = f"{scheme or 'http'}://{origin}"
        parsed = urlsplit(origin)
        scheme, netloc = parsed.scheme, parsed.netloc
    if config.serve_path:
        path = "/" + config.serve_path.lstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _dev_url(flag: str | None) -> str | None:
    if flag is None or flag.lower() in _TRUE | _FALSE:
        return None
    return flag


def _origin(value: str | None, mode: Mode) -> str:
    if not value:
        return DEFAULT_ORIGIN
    if "://" not in value:
        # As the official SDKs do: a bare host is https in production, http in development.
        value = ("http://" if mode == "dev" else "https://") + value
    return value.rstrip("/")

"""Who may call what: SDK bearer tokens and the REST API's key, in production mode."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.responses import error
from stepwell.protocol.signing import strip_prefix, verify_bearer


def check_bearer(request: Request) -> Response | None:
    """None when the request may proceed; a 401 otherwise.

    Accepted: what the official SDKs send (the SHA-256 of the signing key, with or without its
    ``signkey-<env>-`` prefix), and the signing key itself, as Inngest's REST API accepts it.
    """
    keys: Sequence[str] = request.app.state.signing_keys
    if not keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        token = token.strip()
        if verify_bearer(token, keys) or any(strip_prefix(token) == strip_prefix(k) for k in keys):
            return None
    return error(401, "missing or wrong bearer token: use the signing key", "unauthorized")

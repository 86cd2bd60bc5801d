"""Dashboard login in production mode: the signing key, typed once, traded for a cookie.

Dev mode (no signing keys) is open and says so on every page. In production mode every
dashboard page needs the session cookie; the cookie holds an HMAC of a fixed label under the
signing key, never the key itself, so rotating the key logs everyone out. It is ``HttpOnly`` and
``SameSite=Strict``, which also keeps other sites from posting the dashboard's forms.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stepwell.engine.api.dashboard.html import Form, esc, page
from stepwell.protocol.signing import strip_prefix, verify_bearer

COOKIE = "stepwell_session"
_LABEL = b"stepwell dashboard session v1"

Endpoint = Callable[[Request], Awaitable[Response]]


def session_token(key: str) -> str:
    """The cookie value for a signing key."""
    return hmac.new(strip_prefix(key.strip()).encode(), _LABEL, hashlib.sha256).hexdigest()


def accepts_login(token: str, keys: Sequence[str]) -> bool:
    """Whether ``token`` is a signing key (or its bearer token) of this server."""
    token = token.strip()
    if not token:
        return False
    plain = strip_prefix(token)
    return verify_bearer(token, keys) or any(
        hmac.compare_digest(plain, strip_prefix(k)) for k in keys
    )


def logged_in(request: Request) -> bool:
    """True in dev mode, or with a valid session cookie."""
    keys: Sequence[str] = request.app.state.signing_keys
    if not keys:
        return True
    cookie = request.cookies.get(COOKIE, "")
    return any(hmac.compare_digest(cookie, session_token(k)) for k in keys)


def same_origin(request: Request) -> bool:
    """False for a form posted from another site (its ``Origin`` names another host).

    Browsers send ``Origin`` with every cross-site POST; the dev-mode dashboard has no session
    to protect it, so without this check any web page could post its forms to 127.0.0.1.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def guarded(endpoint: Endpoint) -> Endpoint:
    """Pages redirect to the login form without a session; fragments answer 401; forms posted
    from another site answer 403."""

    async def check(request: Request) -> Response:
        if request.method == "POST" and not same_origin(request):
            return Response("forms are accepted from this dashboard only", status_code=403)
        if logged_in(request):
            return await endpoint(request)
        if request.method == "GET" and "fragment" not in request.url.path:
            login = "/dashboard/login?" + urlencode({"next": request.url.path})
            return RedirectResponse(login, status_code=303)
        return Response("log in first", status_code=401)

    check.__name__ = endpoint.__name__
    return check


async def login_form(
    request: Request, error: str | None = None, status: int = 200, next_path: str | None = None
) -> Response:
    next_path = next_path or request.query_params.get("next", "/")
    problem = (
        f'<p class="field-error" id="token-error" role="alert">{esc(error)}</p>' if error else ""
    )
    described = ' aria-describedby="token-error" aria-invalid="true"' if error else ""
    body = f"""<form method="post" action="/dashboard/login" class="stack login">
<p>This server runs in production mode. Log in with its signing key
(<code>--signing-key</code> / <code>STEPWELL_SIGNING_KEY</code>).</p>
<label for="token">Signing key</label>
<input id="token" name="token" type="password" autocomplete="current-password" required
 autofocus{described}>
{problem}
<input type="hidden" name="next" value="{esc(next_path)}">
<div><button type="submit">Log in</button></div>
</form>"""
    return page(request, "Log in", body, status_code=status)


async def login(request: Request) -> Response:
    form = await Form.read(request)
    token = str(form.get("token") or "")
    next_path = str(form.get("next") or "/")
    if not next_path.startswith("/") or next_path.startswith("//"):
        next_path = "/"
    keys: Sequence[str] = request.app.state.signing_keys
    if not keys:
        return RedirectResponse(next_path, status_code=303)
    if not accepts_login(token, keys):
        return await login_form(request, "That is not this server's signing key.", 401, next_path)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        session_token(keys[0]),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response

"""HTML building blocks: escaping, the page frame, and small pieces every page uses.

Pages are plain Python strings. Everything that comes from data (ids, names, payloads, errors)
goes through :func:`esc` at the point it is interpolated; helpers here return HTML that is
already safe to embed.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from stepwell.engine.engine import Engine

NAV = (
    ("/", "Runs"),
    ("/events", "Events"),
    ("/functions", "Functions"),
    ("/apps", "Apps"),
    ("/activity", "Activity"),
)


def engine_of(request: Request) -> Engine:
    """The engine behind the app serving ``request``."""
    engine: Engine = request.app.state.engine
    return engine


def redirect(path: str, **message: str) -> Response:
    """See other: ``path``, carrying ``notice=`` or ``error=`` for the page to show."""
    query = urlencode({k: v for k, v in message.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def esc(value: object) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_time(ms: int | None) -> str:
    """Epoch milliseconds as a ``<time>`` element in UTC (the script shows local time)."""
    if ms is None:
        return "—"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f'<time datetime="{esc(moment.isoformat())}">{esc(text)}</time>'


def fmt_ms(ms: int | None) -> str:
    """A duration for people: ``820 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def json_text(value: Any) -> str:
    """Indented JSON, for ``<pre>`` and ``<textarea>`` (not escaped)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def json_block(value: Any, label: str) -> str:
    """A labelled, scrollable JSON block."""
    return f'<pre class="json" aria-label="{esc(label)}" tabindex="0">{esc(json_text(value))}</pre>'


def status_badge(status: str) -> str:
    """A run status as a coloured badge (the colour repeats the word, never replaces it)."""
    return f'<span class="badge status-{esc(status.lower())}">{esc(status)}</span>'


def link(href: str, text: str, **params: object) -> str:
    """An ``<a>`` with an escaped query string."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    target = f"{href}?{urlencode(query)}" if query else href
    return f'<a href="{esc(target)}">{esc(text)}</a>'


def select(name: str, label: str, options: Iterable[tuple[str, str]], chosen: str | None) -> str:
    """A labelled ``<select>``; ``options`` are ``(value, text)``."""
    items = "".join(
        f'<option value="{esc(v)}"{" selected" if v == (chosen or "") else ""}>{esc(t)}</option>'
        for v, t in options
    )
    return (
        f'<label for="f-{esc(name)}">{esc(label)}</label>'
        f'<select id="f-{esc(name)}" name="{esc(name)}">{items}</select>'
    )


def text_input(name: str, label: str, value: str | None = None, **attrs: str) -> str:
    """A labelled text ``<input>``."""
    extra = "".join(f' {esc(k.replace("_", "-"))}="{esc(v)}"' for k, v in attrs.items())
    return (
        f'<label for="f-{esc(name)}">{esc(label)}</label>'
        f'<input id="f-{esc(name)}" name="{esc(name)}" value="{esc(value or "")}"{extra}>'
    )


def button_form(action: str, text: str, *, danger: bool = False, confirm: str | None = None) -> str:
    """A one-button POST form (actions change state, so they are never links)."""
    css = "danger" if danger else ""
    ask = f' data-confirm="{esc(confirm)}"' if confirm else ""
    return (
        f'<form method="post" action="{esc(action)}" class="inline"{ask}>'
        f'<button type="submit" class="{css}">{esc(text)}</button></form>'
    )


def notice(request: Request) -> str:
    """The outcome of the last action, passed along a redirect as ``?notice=`` / ``?error=``."""
    out = ""
    if text := request.query_params.get("notice"):
        out += f'<p class="notice" role="status">{esc(text)}</p>'
    if text := request.query_params.get("error"):
        out += f'<p class="error" role="alert">{esc(text)}</p>'
    return out


def page(
    request: Request, title: str, body: str, *, status_code: int = 200, current: str = ""
) -> HTMLResponse:
    """The frame around a page: head, navigation, mode banner, main content."""
    here = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{href}"{here if href == current else ""}>{text}</a></li>'
        for href, text in NAV
    )
    html_text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{esc(title)} · stepwell</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
<script src="/dashboard/static/dashboard.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<nav aria-label="Main"><a class="brand" href="/">stepwell</a><ul>{links}</ul>
<a class="send" href="/send">Send event</a>{_logout(request)}</nav>
{_mode_banner(request)}
</header>
<main id="main">
<h1>{esc(title)}</h1>
{notice(request)}
{body}
</main>
</body>
</html>"""
    return HTMLResponse(html_text, status_code=status_code)


def _mode_banner(request: Request) -> str:
    if request.app.state.signing_keys:
        return ""
    server = request.scope.get("server") or ("127.0.0.1", None)
    return (
        '<p class="banner" role="note"><strong>Dev mode.</strong> This dashboard is open to '
        f"anyone who can reach {esc(server[0])}: no login, no keys checked. "
        "Bind to 127.0.0.1 (the default) and use <code>stepwell start</code> in production.</p>"
    )


def _logout(request: Request) -> str:
    if not request.app.state.signing_keys:
        return ""
    return (
        '<form method="post" action="/dashboard/logout" class="inline">'
        '<button type="submit">Log out</button></form>'
    )


def table(headers: Iterable[str], rows: str, *, caption: str, live: str | None = None) -> str:
    """A table with a caption; ``live`` is a URL the script polls for fresh ``<tbody>`` rows."""
    heads = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    attr = f' data-live="{esc(live)}" aria-live="polite"' if live else ""
    return (
        f"<table><caption>{esc(caption)}</caption><thead><tr>{heads}</tr></thead>"
        f"<tbody{attr}>{rows}</tbody></table>"
    )


def query_without(request: Request, *drop: str, **set_: object) -> dict[str, str]:
    """The request's query parameters minus ``drop``, plus ``set_``."""
    out = {k: v for k, v in request.query_params.items() if k not in drop}
    out.update({k: str(v) for k, v in set_.items() if v is not None})
    return out


def definition_list(items: Mapping[str, str]) -> str:
    """A ``<dl>`` of already-safe HTML values."""
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items.items()) + "</dl>"


class Form:
    """A submitted ``application/x-www-form-urlencoded`` form (every dashboard form is one, so
    no multipart parser is needed)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    @classmethod
    async def read(cls, request: Request, limit: int = 1 << 20) -> Form:
        """The request's form fields; a body past ``limit`` bytes reads as an empty form."""
        body = await request.body()
        if len(body) > limit:
            return cls([])
        return cls(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``."""
        return next((v for k, v in self.pairs if k == name), default)

    def items(self) -> list[tuple[str, str]]:
        """Every field, in order (repeated names repeat)."""
        return list(self.pairs)

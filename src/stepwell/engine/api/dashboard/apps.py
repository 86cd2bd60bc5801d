"""Apps: each app's URL, SDK, framework and sync state in plain words; sync a new app by URL."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.dashboard.html import (
    Form,
    engine_of,
    esc,
    fmt_time,
    page,
    redirect,
    table,
)
from stepwell.engine.sync import Syncer


def _app_rows(request: Request) -> list[dict[str, Any]]:
    engine = engine_of(request)
    syncer: Syncer | None = request.app.state.syncer
    states = dict(syncer.states) if syncer else {}
    rows: list[dict[str, Any]] = []
    for app in sorted(engine.apps.values(), key=lambda a: a.app_id):
        url = app.url or ""
        state = states.pop(url.split("?")[0], None) if url else None
        in_process = url.startswith("inprocess://") or not url
        rows.append(
            {
                "app_id": app.app_id,
                "url": "in-process (runs inside this server)" if in_process else url,
                "sdk": app.sdk or "—",
                "framework": app.framework or "—",
                "functions": len([s for s in engine.registry.all() if s.app_id == app.app_id]),
                "state": _sync_words(app.synced_at, state.ok if state else True, state),
            }
        )
    for state in states.values():
        rows.append(
            {
                "app_id": state.app_id or "—",
                "url": state.url,
                "sdk": "—",
                "framework": "—",
                "functions": 0,
                "state": _sync_words(None, state.ok, state),
            }
        )
    return rows


def _sync_words(synced_at: int | None, ok: bool, state: Any) -> str:
    if not ok and state is not None:
        return (
            f'<span class="badge status-failed">sync failed</span> {fmt_time(state.at)}: '
            f"{esc(state.error or 'no answer')}"
        )
    return f'<span class="badge status-completed">synced</span> {fmt_time(synced_at)}'


async def apps_page(request: Request) -> Response:
    rows = (
        "".join(
            f'<tr><td class="mono">{esc(r["app_id"])}</td><td class="mono">{esc(r["url"])}</td>'
            f"<td>{esc(r['sdk'])}</td><td>{esc(r['framework'])}</td><td>{r['functions']}</td>"
            f"<td>{r['state']}</td></tr>"
            for r in _app_rows(request)
        )
        or '<tr><td colspan="6" class="muted">No apps yet.</td></tr>'
    )
    body = table(
        ("App", "URL", "SDK", "Framework", "Functions", "Sync"), rows, caption="Synced apps"
    )
    if request.app.state.syncer is not None:
        body += """<h2>Sync a new app</h2>
<form method="post" action="/apps/sync" class="stack" aria-label="Sync a new app">
<label for="app-url">The app's serve URL</label>
<input id="app-url" name="url" type="url" required placeholder="http://localhost:3000/api/inngest">
<div><button type="submit">Sync app</button></div>
</form>"""
    return page(request, "Apps", body, current="/apps")


async def sync_app(request: Request) -> Response:
    syncer: Syncer | None = request.app.state.syncer
    form = await Form.read(request)
    url = str(form.get("url") or "").strip()
    if syncer is None:
        return redirect("/apps", error="This server cannot sync apps.")
    if not url.startswith(("http://", "https://")):
        return redirect(
            "/apps", error="Give the full serve URL, e.g. http://localhost:3000/api/inngest."
        )
    state = await syncer.sync(url)
    if state.ok:
        return redirect("/apps", notice=f"Synced {state.app_id or url}.")
    return redirect("/apps", error=f"Could not sync {url}: {state.error}")

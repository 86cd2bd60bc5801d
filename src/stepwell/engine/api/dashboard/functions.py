"""Functions (triggers, flow-control config, invoke) and apps (sync state, sync by URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stepwell.engine.api.dashboard import charts
from stepwell.engine.api.dashboard.html import (
    Form,
    esc,
    fmt_time,
    json_block,
    page,
    table,
)
from stepwell.engine.api.dashboard.runs import engine_of
from stepwell.engine.operations import invoke
from stepwell.engine.registry import FLOW_CONTROL, FunctionSpec
from stepwell.engine.sync import Syncer
from stepwell.errors import StepwellError


def _triggers(spec: FunctionSpec) -> str:
    parts = []
    for trigger in spec.config.get("triggers") or []:
        if not isinstance(trigger, dict):
            continue
        if trigger.get("cron"):
            parts.append(f"cron <code>{esc(trigger['cron'])}</code>")
        elif trigger.get("event"):
            text = f"event <code>{esc(trigger['event'])}</code>"
            if trigger.get("expression"):
                text += f" if <code>{esc(trigger['expression'])}</code>"
            parts.append(text)
    return "<br>".join(parts) or '<span class="muted">none (invoke only)</span>'


def _flow_control(spec: FunctionSpec) -> str:
    raw = {k: spec.config[k] for k in FLOW_CONTROL if spec.config.get(k) is not None}
    raw["retries"] = spec.retries
    if spec.config.get("cancel"):
        raw["cancel"] = spec.config["cancel"]
    return json_block(raw, f"configuration of {spec.function_id}")


def _recent(series: charts.Series | None) -> str:
    if series is None:
        return "Last hour: no runs."
    counts = " · ".join(f"{series.total(k)} {k.lower()}" for k in charts.KINDS)
    return f'Last hour: {counts} ({charts.failure_rate(series)} of ended runs failed) · <a href="/activity">activity</a>'


def _function_section(spec: FunctionSpec, recent: charts.Series | None) -> str:
    ident = f"invoke-{spec.function_id}"
    return f"""<section aria-labelledby="fn-{esc(spec.function_id)}" class="function">
<h2 id="fn-{esc(spec.function_id)}" class="mono">{esc(spec.function_id)}</h2>
<p>{esc(spec.name)} · app <code>{esc(spec.app_id)}</code> · version {spec.version} ·
<a href="/?{esc(urlencode({"function": spec.function_id}))}">runs</a></p>
<p>Triggers: {_triggers(spec)}</p>
<p>{_recent(recent)}</p>
<details><summary>Flow control and retries (as registered)</summary>{_flow_control(spec)}</details>
<details><summary>Invoke with data</summary>
<form method="post" action="/functions/{esc(spec.function_id)}/invoke" class="stack">
<label for="{esc(ident)}">Data (a JSON object)</label>
<textarea id="{esc(ident)}" name="data" rows="4" spellcheck="false">{{}}</textarea>
<div><button type="submit">Invoke {esc(spec.function_id)}</button></div>
</form></details>
</section>"""


async def functions_page(request: Request) -> Response:
    engine = engine_of(request)
    specs = sorted(engine.registry.all(), key=lambda s: s.function_id)
    first = engine.clock.now_ms() // charts.MINUTE * charts.MINUTE - 59 * charts.MINUTE
    end = first + 60 * charts.MINUTE
    rows = await engine.store.read(lambda tx: tx.count_runs_per_minute(first, end))
    recent = {s.function_id: s for s in charts.per_minute(rows, first, 60)}
    if not specs:
        body = '<p class="muted">No functions yet: sync an app on the Apps page.</p>'
    else:
        body = "".join(_function_section(s, recent.get(s.function_id)) for s in specs)
    return page(request, "Functions", body, current="/functions")


async def invoke_function(request: Request) -> Response:
    function_id = request.path_params["function_id"]
    form = await Form.read(request)
    raw = str(form.get("data") or "").strip() or "{}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _to("/functions", error=f"{function_id}: data is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return _to("/functions", error=f"{function_id}: data must be a JSON object")
    try:
        run = await invoke(engine_of(request), function_id, data)
    except StepwellError as exc:
        return _to("/functions", error=str(exc))
    return _to(f"/runs/{run.run_id}", notice=f"Invoked {function_id}.")


def _to(path: str, **message: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode(message)}", status_code=303)


# -- apps -----------------------------------------------------------------------------------------


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
        return _to("/apps", error="This server cannot sync apps.")
    if not url.startswith(("http://", "https://")):
        return _to(
            "/apps", error="Give the full serve URL, e.g. http://localhost:3000/api/inngest."
        )
    state = await syncer.sync(url)
    if state.ok:
        return _to("/apps", notice=f"Synced {state.app_id or url}.")
    return _to("/apps", error=f"Could not sync {url}: {state.error}")

"""Functions: triggers, recent runs, flow-control config as registered, invoke with data."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.dashboard import charts
from stepwell.engine.api.dashboard.html import (
    Form,
    engine_of,
    esc,
    json_block,
    page,
    redirect,
)
from stepwell.engine.operations import invoke
from stepwell.engine.registry import FLOW_CONTROL, FunctionSpec
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


def _function_section(
    spec: FunctionSpec, recent: charts.Series | None, paused: bool = False
) -> str:
    ident = f"invoke-{spec.function_id}"
    action, label = ("resume", "Resume") if paused else ("pause", "Pause")
    state = (
        '<strong class="badge">Paused</strong>: its events start no run; replay them after '
        "resuming. "
        if paused
        else ""
    )
    return f"""<section aria-labelledby="fn-{esc(spec.function_id)}" class="function">
<h2 id="fn-{esc(spec.function_id)}" class="mono">{esc(spec.function_id)}</h2>
<p>{esc(spec.name)} · app <code>{esc(spec.app_id)}</code> · version {spec.version} ·
<a href="/?{esc(urlencode({"function": spec.function_id}))}">runs</a></p>
<form method="post" action="/functions/{esc(spec.function_id)}/{action}"><p>{state}
<button type="submit">{label} {esc(spec.function_id)}</button></p></form>
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
        paused = engine.registry.paused
        body = "".join(
            _function_section(s, recent.get(s.function_id), s.function_id in paused) for s in specs
        )
    return page(request, "Functions", body, current="/functions")


async def pause_function(request: Request) -> Response:
    return await _set_paused(request, True)


async def resume_function(request: Request) -> Response:
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    function_id = request.path_params["function_id"]
    await Form.read(request)  # refuses a form posted from another site
    try:
        await engine_of(request).pause(function_id, paused)
    except StepwellError as exc:
        return redirect("/functions", error=str(exc))
    done = "Paused" if paused else "Resumed"
    return redirect("/functions", notice=f"{done} {function_id}.")


async def invoke_function(request: Request) -> Response:
    function_id = request.path_params["function_id"]
    form = await Form.read(request)
    raw = str(form.get("data") or "").strip() or "{}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return redirect("/functions", error=f"{function_id}: data is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return redirect("/functions", error=f"{function_id}: data must be a JSON object")
    try:
        run = await invoke(engine_of(request), function_id, data)
    except StepwellError as exc:
        return redirect("/functions", error=str(exc))
    return redirect(f"/runs/{run.run_id}", notice=f"Invoked {function_id}.")

"""One run's page: summary, timeline, output, steps, trigger events; cancel and reruns."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from stepwell.engine.api.dashboard import timeline
from stepwell.engine.api.dashboard.html import (
    Form,
    button_form,
    definition_list,
    engine_of,
    esc,
    fmt_ms,
    fmt_time,
    json_block,
    json_text,
    link,
    page,
    redirect,
    status_badge,
)
from stepwell.engine.operations import rerun_from_step
from stepwell.errors import StepwellError
from stepwell.store.records import (
    FINAL_STATUSES,
    INPUT_KIND,
    AttemptError,
    MemoRecord,
    RunRecord,
)


async def _load_run(request: Request) -> tuple[Any, ...]:
    """The run, its memo, queue items, waits and trigger events; ``(None,)`` if unknown."""
    run_id = request.path_params["run_id"]

    def load(tx: Any) -> tuple[Any, ...]:
        run = tx.get_run(run_id)
        if run is None:
            return (None,)
        return (
            run,
            tx.get_memo(run_id),
            tx.list_run_queue_items(run_id),
            tx.list_run_waits(run_id),
            tx.get_events(list(run.event_ids)),
            tx.list_attempt_errors(run_id),
        )

    return await engine_of(request).store.read(load)


def _run_state(run: RunRecord, memo: list[MemoRecord], queue: Any, waits: Any, now: int) -> str:
    """The part of a run's page that changes while it runs: summary, actions, timeline, outcome."""
    final = ' <span data-final="1" hidden></span>' if run.status in FINAL_STATUSES else ""
    rows = timeline.bars(run, memo, queue, waits, now)
    return (
        _run_summary(run)
        + final
        + _run_actions(run)
        + "<h2>Timeline</h2>"
        + timeline.render(run, rows, now)
        + _outcome(run)
    )


async def run_fragment(request: Request) -> Response:
    """What the run's page polls while the run has not ended."""
    loaded = await _load_run(request)
    if loaded[0] is None:
        return HTMLResponse("", status_code=404)
    run, memo, queue, waits, _, _ = loaded
    state = _run_state(run, memo, queue, waits, engine_of(request).clock.now_ms())
    return HTMLResponse(state, headers={"Cache-Control": "no-store"})


async def run_page(request: Request) -> Response:
    loaded = await _load_run(request)
    if loaded[0] is None:
        run_id = request.path_params["run_id"]
        return page(request, "Run not found", f"<p>No run {esc(run_id)}.</p>", status_code=404)
    run, memo, queue, waits, events, failed = loaded
    state = _run_state(run, memo, queue, waits, engine_of(request).clock.now_ms())
    if run.status not in FINAL_STATUSES:
        # polled while the run is active; the page reloads once when it ends
        live = f"/runs/{run.run_id}/fragment"
        state = f'<div data-live="{esc(live)}" data-reload-when-final="1">{state}</div>'
    body = state + "<h2>Steps</h2>" + _steps(run, memo) + _failed_attempts(failed, memo)
    body += "<h2>Trigger events</h2>" + "".join(
        f'<h3 class="mono">{link(f"/events/{e.event_id}", e.name)} '
        f'<span class="muted">{esc(e.event_id)}</span></h3>'
        + json_block(e.to_wire(), f"event {e.name}")
        for e in events
    )
    return page(request, f"Run {run.run_id}", body)


def _run_summary(run: RunRecord) -> str:
    items = {
        "Function": esc(run.function_id),
        "Status": status_badge(run.status),
        "Queued": fmt_time(run.created_at),
        "Started": fmt_time(run.started_at),
        "Ended": fmt_time(run.ended_at),
        "Attempt": esc(run.attempt),
    }
    if run.cancel_reason:
        items["Cancelled because"] = esc(run.cancel_reason)
    if run.parent_run_id:
        items["Invoked by"] = link(f"/runs/{run.parent_run_id}", run.parent_run_id)
    return definition_list(items)


def _run_actions(run: RunRecord) -> str:
    buttons = []
    if run.status not in FINAL_STATUSES:
        buttons.append(
            button_form(
                f"/runs/{run.run_id}/cancel", "Cancel run", danger=True, confirm="Cancel this run?"
            )
        )
    buttons.append(button_form(f"/runs/{run.run_id}/rerun", "Rerun"))
    return f'<div class="actions" aria-label="Run actions">{"".join(buttons)}</div>'


def _outcome(run: RunRecord) -> str:
    if run.status == "Completed":
        return "<h2>Output</h2>" + json_block(run.output, "run output")
    if run.error is not None:
        return "<h2>Error</h2>" + _error_block(run.error)
    return ""


def _failed_attempts(failed: list[AttemptError], memo: list[MemoRecord]) -> str:
    """Attempts that failed and were retried, with their errors (the last attempt's error is
    the step's or the run's)."""
    if not failed:
        return ""
    names = {m.step_key: m.step_id for m in memo}
    items = []
    for f in failed:
        where = (
            f"step <code>{esc(f.step_id or names.get(f.step_key) or f.step_key)}</code>"
            if f.step_key
            else "the handler's own code"
        )
        items.append(
            f"<li>Attempt {f.attempt + 1} of {where} failed at "
            f"{esc(fmt_time(f.failed_at))}"
            f"{_error_block(f.error)}</li>"
        )
    return "<h2>Failed attempts (retried)</h2><ol>" + "".join(items) + "</ol>"


def _error_block(error: Any) -> str:
    if not isinstance(error, dict):
        return json_block(error, "error")
    head = f"<p><strong>{esc(error.get('name', 'Error'))}</strong>: {esc(error.get('message', ''))}</p>"
    stack = error.get("stack")
    if stack:
        head += f'<pre class="json" tabindex="0" aria-label="stack trace">{esc(stack)}</pre>'
    return head


def _steps(run: RunRecord, memo: list[MemoRecord]) -> str:
    if not memo:
        return '<p class="muted">No step has completed yet.</p>'
    out = []
    for i, m in enumerate(memo):
        value = m.value
        if m.kind == INPUT_KIND:
            shown = '<p class="muted">Not run yet in this run; it will run with this input.</p>'
        elif isinstance(value, dict) and "error" in value and "data" not in value:
            shown = "<p>Error</p>" + _error_block(value["error"])
        elif isinstance(value, dict) and "data" in value:
            shown = json_block(value["data"], f"output of {m.step_id}")
        else:
            shown = json_block(value, f"result of {m.step_id}")
        if m.input is not None:
            named = shown if shown.startswith("<p>") else "<p>Output</p>" + shown
            shown = "<p>Input</p>" + json_block(m.input, f"input of {m.step_id}") + named
        about = [m.kind]
        if m.started_at is not None:
            about.append(fmt_ms(m.created_at - m.started_at))
        if m.attempts > 1:  # the memo records attempts when the engine knows them
            about.append(f"{m.attempts} attempts")
        out.append(
            f'<section class="step" data-step-id="{esc(m.step_id)}" aria-label="step {esc(m.step_id)}">'
            f'<h3 class="mono">{esc(m.step_id)} <span class="muted">({esc(", ".join(about))})'
            f"</span></h3>{shown}" + _rerun_from(run, m, memo[:i]) + "</section>"
        )
    return "".join(out)


def _rerun_with_output(run: RunRecord, step: MemoRecord) -> str:
    if not (isinstance(step.value, dict) and "data" in step.value):
        return ""
    ident = f"own-{step.step_key[:16]}"
    return (
        "<details><summary>Rerun with another output for this step</summary>"
        f'<form method="post" action="/runs/{esc(run.run_id)}/rerun" class="stack">'
        f'<input type="hidden" name="step_key" value="{esc(step.step_key)}">'
        "<p>A new run takes this output for the step instead of running it, and runs the steps "
        "after it again.</p>"
        f'<label for="{esc(ident)}">Output of <code>{esc(step.step_id)}</code> (JSON)</label>'
        f'<textarea id="{esc(ident)}" name="output:{esc(step.step_key)}" rows="3" '
        f'data-own-output="{esc(step.step_id)}">{esc(json_text(step.value["data"]))}</textarea>'
        f'<div><button type="submit">Rerun after {esc(step.step_id)}</button></div>'
        "</form></details>"
    )


def _rerun_from(run: RunRecord, step: MemoRecord, earlier: list[MemoRecord]) -> str:
    fields = []
    for m in earlier:
        if not (isinstance(m.value, dict) and "data" in m.value):
            continue
        name = f"output:{m.step_key}"
        ident = f"edit-{step.step_key[:10]}-{m.step_key[:10]}"
        fields.append(
            f'<label for="{esc(ident)}">Output of step <code>{esc(m.step_id)}</code> (JSON)</label>'
            f'<textarea id="{esc(ident)}" name="{esc(name)}" rows="3" '
            f'data-edit-step="{esc(m.step_id)}">{esc(json_text(m.value["data"]))}</textarea>'
        )
    edits = "".join(fields) or '<p class="muted">No earlier step outputs to edit.</p>'
    own = (
        '<p class="muted">This step recorded no input to edit: it was called without arguments, '
        "or by an SDK that does not report them.</p>"
    )
    if step.input is not None:
        ident = f"input-{step.step_key[:16]}"
        own = (
            f'<label for="{esc(ident)}">Input of <code>{esc(step.step_id)}</code> (JSON list of '
            "its arguments)</label>"
            f'<textarea id="{esc(ident)}" name="input" rows="3" '
            f'data-edit-input="{esc(step.step_id)}">{esc(json_text(step.input))}</textarea>'
        )
    return _rerun_with_output(run, step) + (
        f"<details><summary>Rerun from this step</summary>"
        f'<form method="post" action="/runs/{esc(run.run_id)}/rerun" class="stack">'
        f'<input type="hidden" name="step_key" value="{esc(step.step_key)}">'
        "<p>A new run replays the steps before this one from their recorded outputs and runs "
        "this step and the rest again. Edit this step's input, or what earlier steps returned, "
        "to change what it runs with.</p>"
        f'{own}{edits}<div><button type="submit">Rerun from {esc(step.step_id)}</button></div>'
        "</form></details>"
    )


async def cancel_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    try:
        done = await engine_of(request).cancel(run_id, "cancelled from the dashboard")
    except StepwellError as exc:
        return redirect(f"/runs/{run_id}", error=str(exc))
    return redirect(
        f"/runs/{run_id}", notice="Run cancelled." if done else "The run had already ended."
    )


async def rerun_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    form = await Form.read(request)
    step_key = str(form.get("step_key") or "") or None
    outputs: dict[str, Any] = {}
    for name, value in form.items():
        if not name.startswith("output:"):
            continue
        try:
            outputs[name.removeprefix("output:")] = orjson.loads(str(value))
        except orjson.JSONDecodeError as exc:
            return redirect(f"/runs/{run_id}", error=f"Not valid JSON for an edited output: {exc}")
    raw_input = str(form.get("input") or "").strip()
    input: Any = None
    if raw_input:
        try:
            input = orjson.loads(raw_input)
        except orjson.JSONDecodeError as exc:
            return redirect(f"/runs/{run_id}", error=f"Not valid JSON for the step's input: {exc}")
    try:
        run = await rerun_from_step(engine_of(request), run_id, step_key, outputs, input)
    except StepwellError as exc:
        return redirect(f"/runs/{run_id}", error=str(exc))
    what = "from a step" if step_key else ""
    return redirect(
        f"/runs/{run.run_id}", notice=f"Rerun {what} of {run_id} started.".replace("  ", " ")
    )

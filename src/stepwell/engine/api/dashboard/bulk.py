"""Bulk cancel and replay: from the runs page, and over REST (``POST /v1/cancellations``).

The REST shape follows Inngest's cancellation API: ``{app_id, function_id, started_after,
started_before, if}`` answers a cancellation object with an ``id``; stepwell adds ``status`` to
the selection, the progress fields to the object, ``GET /v1/cancellations/{id}`` to follow it,
and the same pair for replays (``/v1/replays``), which start a new run for each matching run.
Operations are stored, so every node sharing the database answers for every operation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from stepwell.engine.api.dashboard.html import Form, definition_list, esc, fmt_time, page, redirect
from stepwell.engine.api.responses import JSON, error, from_exception
from stepwell.engine.bulk import BulkJob, BulkKind, BulkOperations, RunSelection
from stepwell.engine.bulk import selection_from as parse_selection
from stepwell.errors import StepwellError


def operations(request: Request) -> BulkOperations:
    """The engine's bulk operations: stored, so any node answers for any of them."""
    bulk: BulkOperations = request.app.state.engine.bulk
    return bulk


def job_json(job: BulkJob) -> dict[str, Any]:
    """A bulk operation as the REST API and the progress poll show it."""
    s = job.selection
    return {
        "id": job.job_id,
        "kind": job.kind,
        "app_id": s.app_id,
        "function_id": s.function_id,
        "status_filter": s.status,
        "started_after": s.started_after,
        "started_before": s.started_before,
        "if": s.if_exp,
        "event_name": s.event_name,
        "state": job.state,
        "total": job.total,
        "processed": job.processed,
        "changed": job.changed,
        "skipped": job.skipped,
        "errors": list(job.errors),
        "created_at": job.created_at,
        "ended_at": job.ended_at,
        "updated_at": job.updated_at,
        "node_id": job.node_id,
    }


def _resolve(request: Request, selection: RunSelection) -> RunSelection:
    """Accept a function id without its app prefix when ``app_id`` is given, as Inngest does."""
    from dataclasses import replace

    fid, app = selection.function_id, selection.app_id
    registry = request.app.state.engine.registry
    if fid and app and registry.get(fid) is None and registry.get(f"{app}-{fid}") is not None:
        return replace(selection, function_id=f"{app}-{fid}")
    return selection


# -- REST ------------------------------------------------------------------------------------------


async def _start_rest(request: Request, kind: BulkKind) -> Response:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return error(400, "the body must be a JSON object")
    try:
        selection = _resolve(request, parse_selection(body))
        if selection.function_id is None and selection.app_id is None:
            return error(400, "give function_id or app_id: which runs to act on")
        job = await operations(request).start(kind, selection)
    except StepwellError as exc:
        return from_exception(exc)
    return JSON(job_json(job), status_code=201)


async def create_cancellation(request: Request) -> Response:
    return await _start_rest(request, "cancel")


async def create_replay(request: Request) -> Response:
    return await _start_rest(request, "replay")


async def get_job(request: Request) -> Response:
    try:
        job = await operations(request).get(request.path_params["job_id"])
    except StepwellError as exc:
        return from_exception(exc)
    return JSON(job_json(job))


# -- dashboard -------------------------------------------------------------------------------------


async def start_from_form(request: Request) -> Response:
    form = await Form.read(request)
    kind = str(form.get("kind") or "")
    fields = {k: str(v) for k, v in form.items() if k != "kind"}
    try:
        if kind not in ("cancel", "replay"):
            raise ValueError("kind must be cancel or replay")
        selection = parse_selection(fields)
        job = await operations(request).start(kind, selection)  # type: ignore[arg-type]
    except (StepwellError, ValueError) as exc:
        return redirect("/", error=str(exc))
    return redirect(f"/bulk/{job.job_id}")


async def job_page(request: Request) -> Response:
    try:
        job = await operations(request).get(request.path_params["job_id"])
    except StepwellError as exc:
        return page(request, "Bulk operation not found", f"<p>{esc(exc)}</p>", status_code=404)
    s = job.selection
    what = {
        "Action": "cancel every matching run"
        if job.kind == "cancel"
        else "start a new run for each",
        "Function": esc(s.function_id or "any"),
        "Status": esc(s.status or "any"),
        "Trigger event": esc(s.event_name or "any"),
        "Queued after": fmt_time(s.started_after),
        "Queued before": fmt_time(s.started_before),
        "Started": fmt_time(job.created_at),
    }
    total = "…" if job.total is None else str(job.total)
    done = "cancelled" if job.kind == "cancel" else "rerun"
    body = definition_list(what) + (
        f'<div class="progress" data-progress="/bulk/{esc(job.job_id)}/progress" role="status">'
        f'<label for="bulk-progress">Progress</label> '
        f'<progress id="bulk-progress" max="{max(job.total or 1, 1)}" value="{job.processed}">'
        f'</progress><p>State: <strong data-field="state">{esc(job.state)}</strong> · '
        f'<span data-field="processed">{job.processed}</span> of '
        f'<span data-field="total">{esc(total)}</span> handled · '
        f'<span data-field="changed">{job.changed}</span> {done} · '
        f'<span data-field="skipped">{job.skipped}</span> skipped</p></div>'
    )
    if job.errors:
        body += "<h2>Errors</h2><ul>" + "".join(f"<li>{esc(e)}</li>" for e in job.errors) + "</ul>"
    body += f'<p><a href="/?{esc(_runs_query(s))}">See the matching runs</a></p>'
    return page(request, f"Bulk {job.kind}", body)


def _runs_query(s: RunSelection) -> str:
    params = {"function": s.function_id, "status": s.status, "since": s.started_after}
    params.update(until=s.started_before, event=s.event_name)
    return urlencode({k: v for k, v in params.items() if v is not None})

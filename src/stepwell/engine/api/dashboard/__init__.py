"""The dashboard: server-rendered pages on the engine's port, plus bulk operations over REST.

Pages: runs (``/``, live), a run (``/runs/{id}``: timeline, steps, cancel, rerun, rerun from a
step), events (``/events``, live) and an event (replay), send an event (``/send``), functions
(config, invoke), apps (sync state, sync by URL), bulk operations (``/bulk/{id}``) and activity
(``/activity``: runs per minute per function as inline SVG). Routes hold no business logic: what
changes state lives in :mod:`stepwell.engine.operations` and :mod:`stepwell.engine.bulk`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stepwell.engine.api.dashboard import (
    apps,
    assets,
    auth,
    bulk,
    charts,
    events,
    functions,
    run,
    runs,
)

__all__ = ["rest_routes", "routes"]


def routes() -> list[Route]:
    """The dashboard's routes, each behind the login check in production mode."""
    pages = [
        ("/", runs.runs_page, "GET"),
        ("/runs/fragment", runs.runs_fragment, "GET"),
        ("/runs/{run_id}", run.run_page, "GET"),
        ("/runs/{run_id}/fragment", run.run_fragment, "GET"),
        ("/runs/{run_id}/cancel", run.cancel_run, "POST"),
        ("/runs/{run_id}/rerun", run.rerun_run, "POST"),
        ("/events", events.events_page, "GET"),
        ("/events/fragment", events.events_fragment, "GET"),
        ("/events/{event_id}", events.event_page, "GET"),
        ("/events/{event_id}/replay", events.replay, "POST"),
        ("/send", events.send_form, "GET"),
        ("/send", events.send, "POST"),
        ("/functions", functions.functions_page, "GET"),
        ("/functions/{function_id}/invoke", functions.invoke_function, "POST"),
        ("/functions/{function_id}/pause", functions.pause_function, "POST"),
        ("/functions/{function_id}/resume", functions.resume_function, "POST"),
        ("/apps", apps.apps_page, "GET"),
        ("/apps/sync", apps.sync_app, "POST"),
        ("/activity", charts.activity_page, "GET"),
        ("/bulk", bulk.start_from_form, "POST"),
        ("/bulk/{job_id}", bulk.job_page, "GET"),
        ("/bulk/{job_id}/progress", bulk.get_job, "GET"),
    ]
    open_ = [
        Route("/dashboard/login", auth.login_form, methods=["GET"]),
        Route("/dashboard/login", auth.login, methods=["POST"]),
        Route("/dashboard/logout", auth.logout, methods=["POST"]),
        Route("/dashboard/static/dashboard.css", assets.stylesheet, methods=["GET"]),
        Route("/dashboard/static/dashboard.js", assets.script, methods=["GET"]),
    ]
    return open_ + [Route(p, auth.guarded(fn), methods=[m]) for p, fn, m in pages]


def rest_routes() -> list[tuple[str, Callable[[Request], Coroutine[Any, Any, Response]], str]]:
    """Bulk operations on the REST API, as ``(path, endpoint, method)`` for the bearer guard."""
    return [
        ("/v1/cancellations", bulk.create_cancellation, "POST"),
        ("/v1/cancellations/{job_id}", bulk.get_job, "GET"),
        ("/v1/replays", bulk.create_replay, "POST"),
        ("/v1/replays/{job_id}", bulk.get_job, "GET"),
    ]

"""``stepwell dev | send | runs``."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from stepwell.cli.client import Client
from stepwell.errors import StepwellError


def _server_options(command: Callable[..., None]) -> Callable[..., None]:
    """The arguments `dev` and `start` share: the apps to run in-process, host and port."""
    command = click.option(
        "--port", default=8288, show_default=True, envvar="STEPWELL_PORT", type=int
    )(command)
    command = click.option(
        "--host", default="127.0.0.1", show_default=True, envvar="STEPWELL_HOST"
    )(command)
    return click.argument("app_refs", nargs=-1, metavar="[APP_REF]...")(command)


@click.group()
@click.version_option(package_name="stepwell")
def main() -> None:
    """stepwell: durable, event-driven functions for Python."""


@main.command()
@_server_options
@click.option(
    "--db",
    default=".stepwell/dev.db",
    show_default=True,
    envvar="STEPWELL_DB",
    help="SQLite file (or database URL) holding all state.",
)
@click.option(
    "-u",
    "--sdk-url",
    "sdk_urls",
    multiple=True,
    envvar="STEPWELL_SDK_URL",
    help="An app's serve URL to sync (repeatable), e.g. http://localhost:3000/api/inngest.",
)
@click.option("--no-discovery", is_flag=True, help="Do not look for apps on the usual local ports.")
@click.option(
    "--poll-interval",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds between re-syncs of apps; 0 syncs once.",
)
@click.option(
    "--retry-interval",
    default=None,
    type=click.FloatRange(min=0),
    help="Seconds between attempts, instead of the exponential backoff schedule.",
)
def dev(
    app_refs: tuple[str, ...],
    host: str,
    port: int,
    db: str,
    sdk_urls: tuple[str, ...],
    no_discovery: bool,
    poll_interval: float,
    retry_interval: float | None,
) -> None:
    """Run the engine, its HTTP API and APP_REFs in one process (dev mode: no keys).

    APP_REF is a file (app.py, app.py:attr) or a module (package.module:attr). Apps served over
    HTTP (an official Inngest SDK, or stepwell's served SDK) are synced from --sdk-url.
    """
    from stepwell.cli.server import ServerOptions

    _serve(
        ServerOptions(
            host=host,
            port=port,
            database=db,
            sdk_urls=sdk_urls,
            discovery=not no_discovery,
            poll_s=poll_interval,
            retry_interval_s=retry_interval,
            app_refs=app_refs,
        )
    )


@main.command()
@_server_options
@click.option(
    "--database",
    default=".stepwell/stepwell.db",
    show_default=True,
    envvar="STEPWELL_DATABASE",
    help="SQLite file or postgresql:// URL.",
)
@click.option(
    "--signing-key",
    envvar="STEPWELL_SIGNING_KEY",
    help="signkey-<env>-<hex>: signs requests to apps, authenticates SDKs and the REST API.",
)
@click.option(
    "--signing-key-fallback",
    envvar="STEPWELL_SIGNING_KEY_FALLBACK",
    help="The previous signing key, accepted during rotation.",
)
@click.option(
    "--event-key",
    "event_keys",
    multiple=True,
    envvar="STEPWELL_EVENT_KEY",
    help="A key accepted by POST /e/{key} (repeatable; at least one).",
)
@click.option(
    "-u",
    "--sdk-url",
    "sdk_urls",
    multiple=True,
    envvar="STEPWELL_SDK_URL",
    help="An app's serve URL to sync (repeatable).",
)
@click.option(
    "--poll-interval",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds between re-syncs of --sdk-url apps; 0 syncs once.",
)
@click.option(
    "--retry-interval",
    default=None,
    type=click.FloatRange(min=0),
    help="Seconds between attempts, instead of the exponential backoff schedule.",
)
@click.option(
    "--lease-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    envvar="STEPWELL_LEASE_TIMEOUT",
    help="Seconds a node holds work without renewing its lease; work of a node that died "
    "moves to another node after this.",
)
@click.option(
    "--retention",
    default=None,
    envvar="STEPWELL_RETENTION",
    help="Prune runs that ended longer ago than this (e.g. 30d), hourly; default: keep all.",
)
def start(
    app_refs: tuple[str, ...],
    host: str,
    port: int,
    database: str,
    signing_key: str | None,
    signing_key_fallback: str | None,
    event_keys: tuple[str, ...],
    sdk_urls: tuple[str, ...],
    poll_interval: float,
    retry_interval: float | None,
    lease_timeout: float,
    retention: str | None,
) -> None:
    """Run in production mode: signed requests, event keys, authenticated API."""
    from stepwell.cli.server import ServerOptions
    from stepwell.errors import ConfigError
    from stepwell.protocol.signing import validate_signing_key

    if not signing_key:
        raise click.UsageError(
            "production mode needs --signing-key (or STEPWELL_SIGNING_KEY), "
            "e.g. signkey-prod-$(openssl rand -hex 32)"
        )
    if not event_keys:
        raise click.UsageError(
            "production mode needs at least one --event-key (or STEPWELL_EVENT_KEY)"
        )
    try:
        for key in filter(None, (signing_key, signing_key_fallback)):
            validate_signing_key(key)
        retention_s = _retention_s(retention)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    _serve(
        ServerOptions(
            host=host,
            port=port,
            database=database,
            production=True,
            signing_key=signing_key,
            signing_key_fallback=signing_key_fallback,
            event_keys=event_keys,
            sdk_urls=sdk_urls,
            discovery=False,
            poll_s=poll_interval,
            retry_interval_s=retry_interval,
            lease_s=lease_timeout,
            retention_s=retention_s,
            app_refs=app_refs,
        )
    )


def _retention_s(retention: str | None) -> float | None:
    from stepwell.protocol.durations import parse_duration

    if retention is None:
        return None
    return parse_duration(retention, field="--retention") / 1000


def _serve(options: object) -> None:
    from stepwell.cli.server import ServerOptions, run_server

    assert isinstance(options, ServerOptions)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run_server(options))
    except StepwellError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command()
@click.option(
    "--database",
    default=".stepwell/stepwell.db",
    show_default=True,
    envvar="STEPWELL_DATABASE",
    help="SQLite file or postgresql:// URL.",
)
def migrate(database: str) -> None:
    """Bring the database's schema up to date (engines also do this when they start)."""
    from stepwell.store import open_store

    async def run() -> None:
        store = open_store(database)
        await store.open()
        await store.close()

    try:
        asyncio.run(run())
    except (StepwellError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{database}: schema up to date")


@main.command()
@click.option(
    "--older-than",
    required=True,
    help="Prune runs that ended longer ago than this, e.g. 30d, 12h.",
)
@click.option(
    "--database",
    "--db",
    default=".stepwell/stepwell.db",
    show_default=True,
    envvar="STEPWELL_DATABASE",
    help="SQLite file or postgresql:// URL.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
def prune(older_than: str, database: str, dry_run: bool, batch: int) -> None:
    """Delete ended runs (Completed, Failed, Cancelled) older than --older-than, with their
    step results and the events no remaining run references, a batch per transaction."""
    import time

    from stepwell.protocol.durations import parse_duration
    from stepwell.store import open_store
    from stepwell.store.retention import prune as prune_store

    try:
        cutoff = int(time.time() * 1000) - parse_duration(older_than, field="--older-than")
    except StepwellError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None

    async def run() -> Any:
        store = open_store(database)
        await store.open()
        try:
            return await prune_store(store, cutoff, batch=batch, dry_run=dry_run)
        finally:
            await store.close()

    try:
        count = asyncio.run(run())
    except (StepwellError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {count.runs} runs ended before {_time(cutoff)}, {count.memo} step results, "
        f"{count.run_events} run-event links, {count.events} events"
    )


@main.command()
@click.argument("name")
@click.option("--data", default="{}", help="Event data as a JSON object.")
@click.option("--id", "event_id", default=None, help="Idempotency id (dedupes for 24 h).")
@click.option("--url", default=None, envvar="STEPWELL_URL")
def send(name: str, data: str, event_id: str | None, url: str | None) -> None:
    """Send an event NAME with --data JSON."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    ids = _call(lambda: Client(url).send(name, payload, event_id))
    for event_id_ in ids:
        click.echo(event_id_)


@main.group()
def runs() -> None:
    """List, show, cancel and replay runs."""


@runs.command("list")
@click.option("--function", "function_id", default=None, help="Composite function id (app-fn).")
@click.option(
    "--status",
    default=None,
    type=click.Choice(["Queued", "Running", "Completed", "Failed", "Cancelled"]),
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--url", default=None, envvar="STEPWELL_URL")
def runs_list(function_id: str | None, status: str | None, limit: int, url: str | None) -> None:
    """List recent runs, newest first."""
    rows = _call(lambda: Client(url).runs(function_id, status, limit))
    if not rows:
        click.echo("no runs")
        return
    click.echo(f"{'RUN ID':<28}{'STATUS':<11}{'FUNCTION':<36}QUEUED AT")
    for run in rows:
        click.echo(
            f"{run['run_id']:<28}{run['status']:<11}{run['function_id']:<36}{_time(run['queued_at'])}"
        )


@runs.command("show")
@click.argument("run_id")
@click.option("--url", default=None, envvar="STEPWELL_URL")
def runs_show(run_id: str, url: str | None) -> None:
    """Show a run and its steps."""
    client = Client(url)
    run = _call(lambda: client.run(run_id))
    steps = _call(lambda: client.steps(run_id))
    click.echo(
        f"run       {run['run_id']}\nfunction  {run['function_id']}\nstatus    {run['status']}"
    )
    click.echo(f"queued    {_time(run['queued_at'])}\nstarted   {_time(run['run_started_at'])}")
    click.echo(f"ended     {_time(run['ended_at'])}")
    if run["error"]:
        click.echo(f"error     {run['error'].get('name')}: {run['error'].get('message')}")
    if run["status"] == "Completed":
        click.echo(f"output    {json.dumps(run['output'])}")
    click.echo("steps:")
    for step in steps:
        click.echo(
            f"  {step['seq']:>3}  {step['kind']:<7} {step['step_id']:<30} "
            f"{json.dumps(step['output'])[:80]}"
        )


def _selection_options(command: Callable[..., None]) -> Callable[..., None]:
    """The filter bulk operations take: function, app, status, time range, CEL condition."""
    for option in reversed(
        [
            click.option("--function", "function_id", default=None, help="Composite id (app-fn)."),
            click.option("--app", "app_id", default=None, help="Runs of this app's functions."),
            click.option(
                "--status",
                default=None,
                type=click.Choice(["Queued", "Running", "Completed", "Failed", "Cancelled"]),
            ),
            click.option(
                "--since", default=None, help='Queued since: a duration ago ("1h") or a time.'
            ),
            click.option(
                "--until", default=None, help='Queued before: a duration ago ("10m") or a time.'
            ),
            click.option("--if", "if_exp", default=None, help="CEL over the trigger `event`."),
            click.option("--url", default=None, envvar="STEPWELL_URL"),
            click.option(
                "--token",
                default=None,
                envvar="STEPWELL_SIGNING_KEY",
                help="The server's signing key (production mode).",
            ),
        ]
    ):
        command = option(command)
    return command


@runs.command("cancel")
@click.argument("run_id", required=False)
@_selection_options
def runs_cancel(
    run_id: str | None, url: str | None, token: str | None, **selection: str | None
) -> None:
    """Cancel a run, or every run matching the filter (with --function, --app, ...)."""
    if run_id is not None:
        if any(selection.values()):
            raise click.UsageError("give a RUN_ID or a filter, not both")
        run = _call(lambda: Client(url, token=token).cancel(run_id))
        click.echo(f"{run['run_id']} {run['status']}")
        return
    _bulk("cancel", Client(url, token=token), selection)


@runs.command("replay")
@_selection_options
def runs_replay(url: str | None, token: str | None, **selection: str | None) -> None:
    """Start a new run (same events) for every run matching the filter."""
    _bulk("replay", Client(url, token=token), selection)


def _bulk(kind: str, client: Client, selection: dict[str, str | None]) -> None:
    import time

    if not (selection.get("function_id") or selection.get("app_id")):
        raise click.UsageError("bulk operations need --function or --app")
    body: dict[str, Any] = {
        "function_id": selection.get("function_id"),
        "app_id": selection.get("app_id"),
        "status": selection.get("status"),
        "if": selection.get("if_exp"),
        "started_after": _instant(selection.get("since"), "--since"),
        "started_before": _instant(selection.get("until"), "--until"),
    }
    job = _call(lambda: client.start_bulk(kind, {k: v for k, v in body.items() if v is not None}))
    job_id = job["id"]
    while job["total"] is None and job["state"] not in ("done", "failed"):
        time.sleep(0.2)
        job = _call(lambda: client.bulk(kind, job_id))
    label = "cancelling" if kind == "cancel" else "replaying"
    with click.progressbar(length=max(job["total"] or 0, 1), label=label) as bar:
        shown = 0
        while True:
            bar.update(job["processed"] - shown)
            shown = job["processed"]
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
            job = _call(lambda: client.bulk(kind, job_id))
    done = "cancelled" if kind == "cancel" else "replayed"
    click.echo(f"{job['changed']} run(s) {done}, {job['skipped']} skipped ({job['id']})")
    for error in job["errors"]:
        click.echo(f"error: {error}", err=True)
    if job["state"] == "failed":
        raise click.ClickException(f"bulk {kind} {job['id']} failed")


def _instant(value: str | None, option: str) -> int | None:
    """A duration ago ("1h") or a point in time, as epoch ms."""
    from stepwell.errors import ConfigError
    from stepwell.protocol.durations import parse_duration, parse_time

    if value is None:
        return None
    try:
        return int(datetime.now(UTC).timestamp() * 1000) - parse_duration(value)
    except ConfigError:
        pass
    try:
        return parse_time(value, field=option)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _call(fn: Any) -> Any:
    try:
        return fn()
    except StepwellError as exc:
        raise click.ClickException(str(exc)) from None


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

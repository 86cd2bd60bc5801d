"""The `stepwell` command against a real engine on a loopback port."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import stepwell
from stepwell.cli.main import main
from tests.support import serve

app = stepwell.App("cli")


@app.function("hello", trigger="cli/hello")
async def hello(ctx: stepwell.Context) -> str:
    return await ctx.step.run("greet", lambda: f"hello {ctx.event.data['who']}")


@app.function("nap", trigger="cli/nap")
async def nap(ctx: stepwell.Context) -> None:
    await ctx.step.sleep("zz", "1h")


async def _cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
    return result.exit_code, result.output


async def _until(predicate, attempts: int = 100):  # type: ignore[no-untyped-def]
    for _ in range(attempts):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.03)
    raise AssertionError("condition never held")


async def test_send_then_list_show_and_cancel_runs(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "cli.db") as url:
        code, out = await _cli("send", "cli/hello", "--data", '{"who": "ada"}', "--url", url)
        assert code == 0, out
        assert len(out.strip()) == 26  # a ULID

        async def completed() -> str | None:
            _code, out = await _cli("runs", "list", "--status", "Completed", "--url", url)
            return out if "cli-hello" in out else None

        listing = await _until(completed)
        run_id = listing.splitlines()[1].split()[0]
        code, shown = await _cli("runs", "show", run_id, "--url", url)
        assert code == 0 and "Completed" in shown and '"hello ada"' in shown and "greet" in shown

        await _cli("send", "cli/nap", "--url", url)

        async def running() -> str | None:
            _code, out = await _cli("runs", "list", "--function", "cli-nap", "--url", url)
            return out if "Running" in out else None

        nap_id = (await _until(running)).splitlines()[1].split()[0]
        code, out = await _cli("runs", "cancel", nap_id, "--url", url)
        assert code == 0 and "Cancelled" in out


async def test_bad_arguments_get_clear_errors(tmp_path: Path) -> None:
    async with serve([app], tmp_path / "cli.db") as url:
        code, out = await _cli("send", "cli/hello", "--data", "{oops", "--url", url)
        assert code == 2 and "not valid JSON" in out
        code, out = await _cli("send", "cli/hello", "--data", "[1]", "--url", url)
        assert code == 2 and "JSON object" in out
        code, out = await _cli("runs", "show", "nope", "--url", url)
        assert code == 1 and "not found" in out
    code, out = await _cli("runs", "list", "--url", "http://127.0.0.1:9")
    assert code == 1 and "no engine at" in out


def test_dev_refuses_a_missing_app_file_and_a_database_in_use(tmp_path: Path) -> None:
    run = [
        sys.executable,
        "-m",
        "stepwell.cli.main",
        "dev",
        "--db",
        str(tmp_path / "d.db"),
        "--port",
        "0",
    ]
    missing = subprocess.run(
        [*run, str(tmp_path / "nope.py")], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 1 and "no such file" in missing.stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    empty = subprocess.run(
        [*run, str(tmp_path / "empty.py")], capture_output=True, text=True, timeout=30
    )
    assert empty.returncode == 1 and "no stepwell.App" in empty.stderr
    import fcntl

    with open(tmp_path / "d.db.lock", "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = subprocess.run(run, capture_output=True, text=True, timeout=30)
    assert busy.returncode == 1 and "in use by another stepwell process" in busy.stderr


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "m.db"
    for _ in range(2):
        result = CliRunner().invoke(main, ["migrate", "--database", str(db)])
        assert result.exit_code == 0, result.output
        assert "schema up to date" in result.output
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"events", "runs", "memo", "queue", "waits"} <= tables
    bad = CliRunner().invoke(main, ["migrate", "--database", "mysql://nope"])
    assert bad.exit_code == 1 and "unsupported" in bad.output.lower()

"""`stepwell start` refuses to run without keys; `stepwell dev -u URL` syncs a served app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.official.harness import start_py_inngest
from tests.support import free_port

CLI = [sys.executable, "-m", "stepwell.cli.main"]
KEY = "signkey-prod-" + "ab" * 32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --signing-key"),
        (["--signing-key", KEY], "at least one --event-key"),
        (["--signing-key", "signkey-prod-nothex", "--event-key", "e"], "hex"),
        (["--signing-key", "not-a-key", "--event-key", "e"], "signkey"),
    ],
)
def test_start_refuses_to_run_without_valid_keys(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWELL_")}
    result = subprocess.run(
        [*CLI, "start", "--database", str(tmp_path / "s.db"), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert message in result.stderr


def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


@pytest.mark.parametrize("mode", ["dev", "production"])
def test_a_served_official_sdk_app_is_synced_from_the_command_line(
    tmp_path: Path, mode: str
) -> None:
    engine_port, app_port = free_port(), free_port()
    engine_url = f"http://127.0.0.1:{engine_port}"
    app_url = f"http://127.0.0.1:{app_port}/api/inngest"
    if mode == "dev":
        cmd = [*CLI, "dev", "--db", str(tmp_path / "d.db"), "--no-discovery", "-u", app_url]
        headers: dict[str, str] = {}
        event_key = "any"
    else:
        cmd = [
            *CLI,
            "start",
            "--database",
            str(tmp_path / "p.db"),
            "--signing-key",
            KEY,
            "--event-key",
            "ek",
            "-u",
            app_url,
            "--poll-interval",
            "1",
        ]
        headers = {"Authorization": f"Bearer {KEY}"}
        event_key = "ek"
    server = subprocess.Popen(
        [*cmd, "--port", str(engine_port)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115 - closed with the process
    )
    try:
        _wait_http(f"{engine_url}/health")
        app = start_py_inngest(
            engine_url,
            port=app_port,
            mode="dev" if mode == "dev" else "cloud",
            signing_key=None if mode == "dev" else KEY,
            event_key=None if mode == "dev" else "ek",
        )
        with app, httpx.Client(base_url=engine_url, headers=headers) as client:
            for _ in range(200):  # the server re-syncs its -u apps every few seconds
                apps = client.get("/v1/apps").json()["data"]
                if any(a["app_id"] == "py-app" for a in apps):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError((tmp_path / "server.log").read_text() + app.logs())
            [event_id] = client.post(f"/e/{event_key}", json={"name": "test/sequential"}).json()[
                "ids"
            ]
            for _ in range(200):
                runs = client.get(f"/v1/events/{event_id}/runs").json()["data"]
                if runs and runs[0]["status"] == "Completed":
                    break
                time.sleep(0.05)
            assert runs[0]["output"] == "AB", runs
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)

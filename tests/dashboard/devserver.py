"""A real ``stepwell dev`` (or ``stepwell start``) process serving the dashboard's test app."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "dashboard" / "dashboard_app.py"


@contextmanager
def dev_process(folder: Path, signing_key: str | None = None) -> Iterator[str]:
    """Run ``stepwell dev`` on the test app with its state in ``folder`` (``stepwell start``
    with ``signing_key``); yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "stepwell.cli.main"]
    if signing_key is None:
        command += ["dev", str(APP), "--db", str(folder / "d.db"), "--no-discovery"]
    else:
        command += ["start", str(APP), "--database", str(folder / "p.db")]
        command += ["--signing-key", signing_key, "--event-key", "ek"]
    command += ["--port", str(port)]
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=0.5)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise AssertionError((folder / "server.log").read_text()) from None
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=20)

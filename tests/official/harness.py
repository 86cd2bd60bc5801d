"""Build and start the apps that use the official Inngest SDKs, pointed at an engine URL.

Two apps live next to this module and define the same functions:

* ``nextjs/`` — Next.js 16 App Router, npm ``inngest@4.24.0``, app id ``nextjs-app``;
* ``py_inngest/app.py`` — FastAPI, PyPI ``inngest==0.5.19``, app id ``py-app``.

The Next.js app is copied into ``.cache/official/nextjs`` at the repository root and
installed and built there; a hash file per phase makes later runs reuse both. Each app runs
as a child process in its own process group, configured only through the SDKs' own
environment variables (PROTOCOL.md §1.1):

* dev mode: ``INNGEST_DEV=<engine url>`` (the URL is both API and event origin; no keys);
* cloud mode: ``INNGEST_BASE_URL=<engine url>``, ``INNGEST_SIGNING_KEY=signkey-prod-<hex>``,
  ``INNGEST_EVENT_KEY=<key>`` and ``INNGEST_DEV=0``.

Handles work as sync and async context managers; the async form starts and stops the
process on a worker thread so an engine on the caller's event loop keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import httpx
import pytest

log = logging.getLogger(__name__)

Mode = Literal["dev", "cloud"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
NEXTJS_SOURCE = HERE / "nextjs"
PY_APP_DIR = HERE / "py_inngest"
CACHE_DIR = REPO_ROOT / ".cache" / "official"
NEXTJS_BUILD_DIR = CACHE_DIR / "nextjs"

NEXTJS_APP_ID = "nextjs-app"
PY_APP_ID = "py-app"
SERVE_PATH = "/api/inngest"

# Function ids (without the "<app id>-" prefix the SDKs add) defined by both apps.
FUNCTION_IDS = (
    "sequential",
    "sleeper",
    "waiter",
    "waiter-timeout",
    "fanout",
    "child",
    "invoker",
    "flaky",
    "fatal",
    "parallel",
    "cancellable",
    "limited",
    "cron",
)
# Functions with an onFailure handler; the SDKs register it as "<composite id>-failure".
FAILURE_HANDLER_IDS = ("fatal",)
# Functions only the Next.js app defines, outside the scenario table: bench/http.py's W1.
NEXTJS_BENCH_IDS = ("ten-steps",)
# Functions only the Next.js app has (the Python SDK has no twin for them).
NEXTJS_ONLY_IDS = (*NEXTJS_BENCH_IDS, "fetcher", "racer", "biller")

MIN_NODE = (20, 9)
INSTALL_TIMEOUT_S = 900.0
BUILD_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

# What never belongs to the app's sources: produced by npm or next, or by this module.
_GENERATED = frozenset(
    {"node_modules", ".next", "next-env.d.ts", "tsconfig.tsbuildinfo", ".stepwell"}
)
_SIGNING_KEY = re.compile(r"^signkey-\w+-(?:[0-9a-fA-F]{2})+$")


# -- toolchain ---------------------------------------------------------------------------


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_node_toolchain() -> None:
    """Skip the calling test when node/npm are missing, or fail it under ``CI=true``.

    A CI job that silently skips the official-SDK tests proves nothing, hence the failure.
    """
    problem = _node_toolchain_problem()
    if problem is None:
        return
    message = f"{problem}; the official Next.js app needs Node.js >= 20.9 and npm on PATH"
    if _ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _node_toolchain_problem() -> str | None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found"
    out = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    ).stdout
    found = re.match(r"v(\d+)\.(\d+)", out.strip())
    if found is None or (int(found[1]), int(found[2])) < MIN_NODE:
        return f"node {out.strip() or '(unknown version)'} is too old"
    return None


# -- building the Next.js app ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What the last :func:`ensure_nextjs_built` call in this process did."""

    app_dir: Path
    install_s: float | None
    """Seconds ``npm ci``/``npm install`` took, or ``None`` when the cached install was reused."""
    build_s: float | None
    """Seconds ``next build`` took, or ``None`` when the cached build was reused."""
    check_s: float
    """Seconds the whole call took, hashing and locking included."""


_last_report: BuildReport | None = None


def last_build_report() -> BuildReport | None:
    """The report of the last :func:`ensure_nextjs_built` call in this process."""
    return _last_report


def ensure_nextjs_built() -> Path:
    """Install and build the Next.js app in the cache directory; returns that directory.

    Sources are copied afresh and rebuilt only when they changed since the last build;
    ``npm`` runs only when ``package.json``/``package-lock.json`` changed. With a lock file
    it runs ``npm ci`` (the lock is authoritative; refresh it with ``npm install`` in
    ``tests/official/nextjs``). Safe to call from concurrent processes. Timings of the
    last install and build are kept in ``.cache/official/nextjs/.stepwell/timings.json``.
    """
    global _last_report
    require_node_toolchain()
    started = time.monotonic()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _file_lock(CACHE_DIR / "nextjs.lock"):
        install_s, build_s = _install_and_build(NEXTJS_SOURCE, NEXTJS_BUILD_DIR)
    _last_report = BuildReport(NEXTJS_BUILD_DIR, install_s, build_s, time.monotonic() - started)
    return NEXTJS_BUILD_DIR


def _install_and_build(source: Path, target: Path) -> tuple[float | None, float | None]:
    state = target / ".stepwell"
    source_hash = _tree_hash(source)
    install_hash = _files_hash(source, ("package.json", "package-lock.json"))
    if _read(state / "source.sha256") != source_hash:
        _replace_sources(source, target)
        (state / "source.sha256").unlink(missing_ok=True)
    state.mkdir(parents=True, exist_ok=True)

    install_s = build_s = None
    if _read(state / "install.sha256") != install_hash or not (target / "node_modules").is_dir():
        (state / "build.sha256").unlink(missing_ok=True)
        verb = "ci" if (target / "package-lock.json").exists() else "install"
        install_s = _run(
            ["npm", verb, "--no-audit", "--no-fund", "--loglevel=error"],
            target,
            INSTALL_TIMEOUT_S,
        )
        (state / "install.sha256").write_text(install_hash)
    if _read(state / "build.sha256") != source_hash or not (target / ".next" / "BUILD_ID").exists():
        build_s = _run([str(_next_bin(target)), "build"], target, BUILD_TIMEOUT_S)
        (state / "build.sha256").write_text(source_hash)
    (state / "source.sha256").write_text(source_hash)
    if install_s is not None or build_s is not None:
        _record_timings(state / "timings.json", install_s, build_s)
    return install_s, build_s


def _replace_sources(source: Path, target: Path) -> None:
    """Make ``target`` hold exactly ``source``'s files, keeping installed and built output."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in target.iterdir():
        if entry.name in _GENERATED:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for path in _source_files(source):
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def _source_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _GENERATED)
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f not in _GENERATED)
    return files


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _files_hash(root: Path, names: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<absent>")
        digest.update(b"\0")
    return digest.hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _next_bin(app_dir: Path) -> Path:
    # The binary `npx next` resolves to; calling it directly keeps npm out of the
    # process tree, so signals reach Next itself.
    return app_dir / "node_modules" / ".bin" / "next"


def _tool_env() -> dict[str, str]:
    env = _clean_env()
    env.update(
        CI="true",
        NEXT_TELEMETRY_DISABLED="1",
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
    )
    return env


def _run(cmd: list[str], cwd: Path, timeout: float) -> float:
    """Run a build step with no stdin; raise with its output when it fails."""
    log.info("running %s in %s", " ".join(cmd), cwd)
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd,
            env=_tool_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{' '.join(cmd)}` timed out after {timeout:.0f}s in {cwd}") from exc
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed with exit code {done.returncode} in {cwd}:\n"
            f"{done.stdout[-8000:]}"
        )
    log.info("%s took %.1fs", " ".join(cmd[:2]), elapsed)
    return elapsed


def _record_timings(path: Path, install_s: float | None, build_s: float | None) -> None:
    timings = json.loads(path.read_text()) if path.exists() else {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if install_s is not None:
        timings["install"] = {"seconds": round(install_s, 2), "at": now}
    if build_s is not None:
        timings["build"] = {"seconds": round(build_s, 2), "at": now}
    path.write_text(json.dumps(timings, indent=2) + "\n")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- environment -------------------------------------------------------------------------


def new_signing_key() -> str:
    """A fresh cloud-mode signing key: ``signkey-prod-`` and 32 random bytes as hex."""
    return "signkey-prod-" + secrets.token_hex(32)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # Inherited INNGEST_* settings would silently change the mode or the origins.
    return {
        k: v for k, v in os.environ.items() if not k.startswith("INNGEST_") and k != "CHECKPOINTING"
    }


def sdk_env(
    engine_url: str, *, mode: Mode, signing_key: str | None, event_key: str | None
) -> dict[str, str]:
    """The ``INNGEST_*`` variables that point an official SDK at ``engine_url``.

    Raises:
        ValueError: cloud mode without a hex signing key or without an event key.
    """
    if mode == "dev":
        env = {"INNGEST_DEV": engine_url}
    elif mode == "cloud":
        if signing_key is None or not _SIGNING_KEY.match(signing_key):
            raise ValueError(
                "cloud mode needs signing_key='signkey-<env>-<even-length hex>' "
                "(the Python SDK hex-decodes it); use new_signing_key()"
            )
        if not event_key:
            raise ValueError(
                "cloud mode needs an event_key: the SDKs refuse to send events without one"
            )
        env = {"INNGEST_BASE_URL": engine_url, "INNGEST_DEV": "0"}
    else:
        raise ValueError(f"mode must be 'dev' or 'cloud', not {mode!r}")
    if signing_key is not None:
        env["INNGEST_SIGNING_KEY"] = signing_key
    if event_key is not None:
        env["INNGEST_EVENT_KEY"] = event_key
    return env


# -- running an app ----------------------------------------------------------------------


class AppProcess:
    """A served app in its own process group; a sync or async context manager.

    Attributes:
        name: ``"nextjs"`` or ``"py_inngest"``.
        url: the serve URL, ``http://127.0.0.1:<port>/api/inngest``.
        mode: ``"dev"`` or ``"cloud"``.
        env: the variables set on top of the (``INNGEST_*``-free) inherited environment.
        startup_s: seconds from spawn until the serve URL answered, once started.
    """

    def __init__(
        self,
        name: str,
        cmd: list[str],
        *,
        cwd: Path,
        port: int,
        mode: Mode,
        env: Mapping[str, str],
        prepare: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}{SERVE_PATH}"
        self.mode: Mode = mode
        self.env = dict(env)
        self.startup_s: float | None = None
        self._cmd = cmd
        self._cwd = cwd
        self._prepare = prepare
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self._final_logs: str | None = None

    # lifecycle

    def start(self) -> AppProcess:
        """Spawn the app and wait until ``GET <url>`` answers (200, or 401 in cloud mode)."""
        if self._prepare is not None:
            self._prepare()
        self._log_dir = Path(tempfile.mkdtemp(prefix=f"stepwell-{self.name}-"))
        env = _clean_env()
        env.update(self.env)
        started = time.monotonic()
        with (self._log_dir / "app.log").open("wb") as out:
            self._proc = subprocess.Popen(
                self._cmd,
                cwd=self._cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        log.info("%s serving %s after %.2fs", self.name, self.url, self.startup_s)
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with code {self._proc.returncode} before serving "
                        f"{self.url}:\n{self.logs()}"
                    )
                try:
                    status = client.get(self.url).status_code
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                else:
                    if status == 200 or (status == 401 and self.mode == "cloud"):
                        return
                    last = f"HTTP {status}"
                time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not serve {self.url} within {START_TIMEOUT_S:.0f}s "
            f"(last: {last}):\n{self.logs()}"
        )

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=STOP_TIMEOUT_S)
            # Children that ignored SIGTERM outlive the leader otherwise.
            _signal_group(proc.pid, signal.SIGKILL)
        if self._log_dir is not None:
            self._final_logs = self._read_logs()
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def logs(self) -> str:
        """Everything the app wrote to stdout and stderr so far (also after it stopped)."""
        if self._log_dir is None:
            return self._final_logs or ""
        return self._read_logs()

    def _read_logs(self) -> str:
        assert self._log_dir is not None
        try:
            return (self._log_dir / "app.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def get(self) -> httpx.Response:
        """``GET <url>``: introspection JSON (unsigned: 200 in dev mode, 401 in cloud mode)."""
        return httpx.get(self.url, timeout=5.0)

    # context managers

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> AppProcess:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AppProcess {self.name} {self.mode} {self.url} {state}>"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def start_nextjs(
    engine_url: str,
    *,
    port: int,
    mode: Mode,
    signing_key: str | None = None,
    event_key: str | None = None,
    checkpointing: bool = True,
) -> AppProcess:
    """The Next.js app (``next start``) configured for ``engine_url``; enter it to start.

    ``checkpointing=False`` sets ``CHECKPOINTING=false``, which the app turns into the
    client option ``checkpointing: false`` (no ``/v1/checkpoint`` calls, PROTOCOL.md §1.11).
    Starting builds the app first if needed (see :func:`ensure_nextjs_built`).
    """
    env = sdk_env(engine_url, mode=mode, signing_key=signing_key, event_key=event_key)
    env.update(
        CHECKPOINTING="true" if checkpointing else "false",
        NEXT_TELEMETRY_DISABLED="1",
    )
    app_dir = NEXTJS_BUILD_DIR
    cmd = [str(_next_bin(app_dir)), "start", "-p", str(port), "-H", "127.0.0.1"]
    return AppProcess(
        "nextjs", cmd, cwd=app_dir, port=port, mode=mode, env=env, prepare=ensure_nextjs_built
    )


def start_py_inngest(
    engine_url: str,
    *,
    port: int,
    mode: Mode,
    signing_key: str | None = None,
    event_key: str | None = None,
) -> AppProcess:
    """The FastAPI app under uvicorn, configured for ``engine_url``; enter it to start."""
    env = sdk_env(engine_url, mode=mode, signing_key=signing_key, event_key=event_key)
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(PY_APP_DIR),
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return AppProcess("py_inngest", cmd, cwd=REPO_ROOT, port=port, mode=mode, env=env)

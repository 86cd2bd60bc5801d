"""Celery 5 with Redis as broker and result backend.

A step is a task and a run is a chain of tasks, the closest Celery equivalent: each task's result
is passed to the next by the worker, through the broker. W3 times a one-task run from
`apply_async` to its body starting; W4's parent is a task that starts its children as a `group`
and returns their ids, which the benchmark then awaits. The worker is started here with the
prefork pool (Celery's default and the one its docs recommend for CPU-bound work, as these
Python-only steps are) and `--concurrency=2`, one process per core of this machine, and stopped
(warm shutdown, SIGTERM) at the end.

Not durable here: the local Redis runs without persistence (no RDB snapshots, appendonly no), so
a restart of Redis loses queued tasks and results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.peers import Unavailable, peer_main, time_w1, time_w3
from bench.sizes import Sizes
from bench.stats import W1_STEPS, fan_out_result, w2_result

ROOT = Path(__file__).resolve().parents[2]
RESULT_TIMEOUT = 60.0


def start_worker() -> subprocess.Popen[bytes]:
    from bench.peers.celery_tasks import app

    app.control.purge()
    celery = Path(sys.executable).with_name("celery")
    worker = subprocess.Popen(
        [
            str(celery),
            "-A",
            "bench.peers.celery_tasks",
            "--quiet",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--hostname=bench@%h",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise Unavailable(f"the Celery worker exited at start with code {worker.returncode}")
        if app.control.ping(timeout=0.5):
            return worker
    stop_worker(worker)
    raise Unavailable("the Celery worker did not answer a ping within 60 s")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def measure(sizes: Sizes) -> dict[str, Any]:
    from celery import chain
    from celery.result import AsyncResult

    from bench.peers.celery_tasks import BACKEND_URL, BROKER_URL, add, app, fan_out, started

    def run(steps: int) -> Any:
        return chain(add.s(0, 0), *(add.s(i) for i in range(1, steps))).apply_async()

    def w4() -> dict[str, Any]:
        start = time.perf_counter()
        ids = fan_out.delay(sizes.w4_children).get(timeout=RESULT_TIMEOUT)
        for child in ids:
            AsyncResult(child).get(timeout=RESULT_TIMEOUT)
        return fan_out_result(len(ids), time.perf_counter() - start)

    worker = start_worker()
    redis_version = app.backend.client.info()["redis_version"]
    try:
        w1 = time_w1(sizes, lambda: run(W1_STEPS).get(timeout=RESULT_TIMEOUT))
        start = time.perf_counter()
        results = [run(3) for _ in range(sizes.w2_runs)]
        for result in results:
            result.get(timeout=RESULT_TIMEOUT)
        w2 = w2_result(sizes.w2_runs, time.perf_counter() - start)
        w3 = time_w3(sizes, lambda n: float(started.delay(n).get(timeout=RESULT_TIMEOUT)))
        w4_result = w4()
    finally:
        stop_worker(worker)
    return {
        "settings": (
            f"Celery 5, broker {BROKER_URL}, result backend {BACKEND_URL}; Redis without "
            "persistence (save '', appendonly no): not durable; worker prefork pool, "
            "concurrency 2; a step is a task, a run a chain of tasks; W4 children started as a group"
        ),
        "server_version": redis_version,
        "w1": w1,
        "w2": w2,
        "w3": w3,
        "w4": w4_result,
    }


if __name__ == "__main__":
    peer_main("celery", measure)

"""The Celery app of the benchmark: `add` (a step that returns a small value), `started` (W3's
first step) and `fan_out` (W4's parent).

The worker is started by `bench.peers.celery_peer` as
`celery -A bench.peers.celery_tasks worker --pool=prefork --concurrency=2`.
"""

from __future__ import annotations

import time

from celery import Celery, group

BROKER_URL = "redis://127.0.0.1:6379/14"
BACKEND_URL = "redis://127.0.0.1:6379/15"

app = Celery("bench", broker=BROKER_URL, backend=BACKEND_URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


@app.task
def add(total: int, i: int) -> int:
    return total + i


@app.task
def started(n: int) -> float:
    """W3: the machine's monotonic clock when this task's body started."""
    return time.monotonic()


@app.task
def fan_out(children: int) -> list[str]:
    """W4: start `children` one-task children as a group; their ids, for the caller to await."""
    result = group(add.s(0, i) for i in range(children)).apply_async()
    return [child.id for child in result.results]

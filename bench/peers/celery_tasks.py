"""The Celery app of the benchmark: one task, `add`, a step that returns a small value.

The worker is started by `bench.peers.celery_peer` as
`celery -A bench.peers.celery_tasks worker --pool=prefork --concurrency=2`.
"""

from __future__ import annotations

from celery import Celery

BROKER_URL = "redis://127.0.0.1:6379/14"
BACKEND_URL = "redis://127.0.0.1:6379/15"

app = Celery("bench", broker=BROKER_URL, backend=BACKEND_URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


@app.task
def add(total: int, i: int) -> int:
    return total + i

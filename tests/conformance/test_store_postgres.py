"""What only the PostgreSQL store promises: several nodes on one database, connections that come
back, wake-ups between nodes, its migrations and its query plans."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pg8000.native
import pytest

from stepwell.errors import StoreError
from stepwell.store import open_store
from stepwell.store.base import Tx
from stepwell.store.migrations import discover
from stepwell.store.postgres import PostgresStore, Target, parse_url
from stepwell.store.records import EventRecord, QueueItem, RunFilter
from stepwell.store.sql import POSTGRES, SqlTx
from tests.conformance.conftest import Backend, pg_connect

LEASE = 30_000


@pytest.fixture
async def pg(pg_backend: Backend) -> AsyncIterator[Callable[..., PostgresStore]]:
    """Opens PostgresStores on the test's schema; closes them after the test."""
    opened: list[PostgresStore] = []

    def make(**options: Any) -> PostgresStore:
        store = PostgresStore(pg_backend.url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def opened(make: Callable[..., PostgresStore], **options: Any) -> PostgresStore:
    store = make(**options)
    await store.open()
    return store


def terminate(store: PostgresStore) -> int:
    """Kill the server side of every connection ``store`` has, as an operator would."""
    admin = pg_connect()
    try:
        rows = admin.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n",
            n=f"stepwell/{store.node_id}",
        )
    finally:
        admin.close()
    return len(rows)


def item(item_id: str, available_at: int = 0) -> QueueItem:
    return QueueItem(item_id, "start", f"run-{item_id}", "app-fn", available_at)


def event(n: int) -> EventRecord:
    return EventRecord(f"01E{n:05}", "test/pg", {"n": n}, n, n)


# -- URLs ---------------------------------------------------------------------------------------


def test_urls_parse_with_libpq_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-env")
    full = parse_url("postgresql://ann:s%40cret@db.example:6543/prod?schema=wf&sslmode=require")
    assert full == Target("ann", "db.example", 6543, "prod", "s@cret", "wf", "require")
    short = parse_url("postgres://ann@db")
    assert (short.port, short.database, short.password, short.schema) == (
        5432,
        "ann",
        "from-env",
        None,
    )
    assert "cret" not in repr(full) and "cret" not in str(full)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://a@b/c",
        "postgresql://a@b:port/c",
        "postgresql://a@b/c?schema=Bad-Name",
        "postgresql://a@b/c?sslmode=sometimes",
        "postgresql://a@b/c?pool=3",
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_open_store_picks_postgres_by_scheme() -> None:
    for scheme in ("postgresql", "postgres"):
        store = open_store(f"{scheme}://ann@db:5432/prod")
        assert isinstance(store, PostgresStore)
        assert store.target.database == "prod"


def test_the_shared_sql_gets_numbered_markers() -> None:
    assert POSTGRES.sql("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"


# -- migrations ---------------------------------------------------------------------------------


async def test_nodes_starting_together_apply_each_migration_once(
    pg: Callable[..., PostgresStore], pg_backend: Backend
) -> None:
    stores = [pg(writers=1) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))  # would race on CREATE TABLE unguarded
    admin = pg_connect(pg_backend.url)
    try:
        versions = [v for (v,) in admin.run("SELECT version FROM schema_migrations")]
    finally:
        admin.close()
    assert versions == [m.version for m in discover("postgres")]


async def test_a_database_from_a_newer_stepwell_is_refused(
    pg: Callable[..., PostgresStore], pg_backend: Backend
) -> None:
    await (await opened(pg)).close()
    admin = pg_connect(pg_backend.url)
    try:
        admin.run("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    finally:
        admin.close()
    with pytest.raises(StoreError, match="newer"):
        await opened(pg)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:9/none?sslmode=disable")
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL at nobody@127\.0\.0\.1:9"):
        await store.open()


# -- several nodes ------------------------------------------------------------------------------


async def test_nodes_claiming_at_once_never_share_an_item_nor_lose_one(
    pg: Callable[..., PostgresStore],
) -> None:
    a, b = await opened(pg), await opened(pg)
    ids = {f"i{n:04}" for n in range(600)}
    await a.run(lambda tx: [tx.enqueue(item(i)) for i in sorted(ids)])
    claimed: list[str] = []

    async def worker(store: PostgresStore, owner: str) -> None:
        while got := await store.run(lambda tx: tx.claim(1, owner, LEASE, 7)):
            claimed.extend(i.item_id for i in got)
            # ack in a unit of its own, so claims and acks of both nodes interleave
            await store.run(lambda tx: [tx.ack(i.item_id, owner, i.generation) for i in got])

    await asyncio.gather(*(worker(s, f"{n}-{k}") for n, s in enumerate((a, b)) for k in range(8)))
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == ids
    assert await b.read(lambda tx: tx.queue_depth()) == 0


async def test_each_writer_thread_commits_batches_of_its_own(
    pg: Callable[..., PostgresStore],
) -> None:
    store = await opened(pg, writers=3)
    results = await asyncio.gather(
        *(store.run(lambda tx, n=n: tx.insert_event(event(n)) or n) for n in range(300))
    )
    assert results == list(range(300))
    assert len(await store.read(lambda tx: tx.list_events("test/pg", limit=1000))) == 300


# -- connections that die -----------------------------------------------------------------------


async def test_connections_killed_while_idle_are_replaced_unseen(
    pg: Callable[..., PostgresStore],
) -> None:
    store = await opened(pg)
    await store.run(lambda tx: tx.insert_event(event(1)))
    assert await store.read(lambda tx: tx.get_event(event(1).event_id)) is not None
    assert terminate(store) >= 3  # two writers and a reader

    await asyncio.gather(*(store.run(lambda tx, n=n: tx.insert_event(event(n))) for n in (2, 3)))
    assert len(await store.read(lambda tx: tx.list_events("test/pg"))) == 3


async def one_batch(store: PostgresStore, *works: Callable[[Tx], object]) -> Any:
    """Submit ``works`` so that they share one batch: queued while the single writer is held.

    Returns the awaitable of their outcomes (exceptions included).
    """
    gate = threading.Event()
    held = asyncio.ensure_future(store.run(lambda tx: gate.wait(10)))
    await asyncio.sleep(0.05)  # the writer is inside `held` now
    calls = [asyncio.ensure_future(store.run(work)) for work in works]
    await asyncio.sleep(0.01)  # each call has queued its unit
    gate.set()
    await held
    return asyncio.gather(*calls, return_exceptions=True)


async def test_a_batch_whose_connection_dies_fails_whole_and_the_next_reconnects(
    pg: Callable[..., PostgresStore],
) -> None:
    store = await opened(pg, writers=1)
    inside, resume = threading.Event(), threading.Event()

    def dies_midway(tx: Tx) -> None:
        tx.insert_event(event(2))
        inside.set()
        resume.wait(10)
        tx.insert_event(event(3))  # the connection is gone by now

    outcomes = await one_batch(
        store,
        lambda tx: tx.insert_event(event(1)),
        dies_midway,
        lambda tx: tx.insert_event(event(4)),
    )
    assert await asyncio.to_thread(inside.wait, 10)
    assert terminate(store) >= 1
    resume.set()
    results = await asyncio.wait_for(outcomes, 30)
    assert all(isinstance(r, StoreError) and "could not commit" in str(r) for r in results)

    await store.run(lambda tx: tx.insert_event(event(5)))  # a fresh connection
    stored = await store.read(lambda tx: tx.list_events("test/pg"))
    assert [e.data["n"] for e in stored] == [5]  # nothing of the failed batch landed


async def test_a_batch_whose_commit_fails_fails_every_unit(
    pg: Callable[..., PostgresStore], pg_backend: Backend
) -> None:
    store = await opened(pg, writers=1)
    admin = pg_connect(pg_backend.url)
    try:  # a check PostgreSQL runs only at COMMIT
        admin.run(
            "CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.tick_at = 666 THEN RAISE EXCEPTION 'tick 666 refused'; END IF; "
            "RETURN NULL; END $$"
        )
        admin.run(
            "CREATE CONSTRAINT TRIGGER refuse_666 AFTER INSERT ON cron_ticks "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_666()"
        )
    finally:
        admin.close()
    outcomes = await one_batch(
        store, *(lambda tx, n=n: tx.claim_cron_tick("f", n) for n in (1, 666, 2))
    )
    results = await asyncio.wait_for(outcomes, 30)
    assert all(isinstance(r, StoreError) and "666 refused" in str(r) for r in results)
    assert await store.read(lambda tx: tx.last_cron_tick("f")) is None
    assert await store.run(lambda tx: tx.claim_cron_tick("f", 3)) is True  # same connection


async def test_a_unit_that_fails_alone_is_rolled_back_alone(
    pg: Callable[..., PostgresStore],
) -> None:
    store = await opened(pg, writers=1)

    def bad(tx: Tx) -> None:
        tx.insert_event(event(9))
        tx.insert_event(event(9))  # duplicate key: this unit fails, its batch does not

    outcomes = await one_batch(
        store, lambda tx: tx.insert_event(event(1)), bad, lambda tx: tx.insert_event(event(2))
    )
    results = await asyncio.wait_for(outcomes, 30)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], pg8000.native.DatabaseError)
    stored = await store.read(lambda tx: tx.list_events("test/pg"))
    assert sorted(e.data["n"] for e in stored) == [1, 2]


# -- wake-ups -----------------------------------------------------------------------------------


async def test_a_node_is_woken_when_another_commits_due_work(
    pg: Callable[..., PostgresStore],
) -> None:
    a, b = await opened(pg), await opened(pg)
    assert await b.wait_for_notify(0.05) is False  # listening from here on

    waiting = asyncio.ensure_future(b.wait_for_notify(10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await a.run(lambda tx: tx.enqueue(item("now")))
    assert await asyncio.wait_for(waiting, 10) is True
    assert time.monotonic() - started < 1.0


async def test_only_committed_due_work_of_other_nodes_wakes(
    pg: Callable[..., PostgresStore],
) -> None:
    a, b = await opened(pg), await opened(pg)
    assert await b.wait_for_notify(0.01) is False

    def enqueue_then_fail(tx: Tx) -> None:
        tx.enqueue(item("rolled-back"))
        raise RuntimeError("abandon")

    await b.run(lambda tx: tx.enqueue(item("own")))  # its own work: it knows already
    await a.run(lambda tx: tx.enqueue(item("later", available_at=2**50)))  # not due yet
    with pytest.raises(RuntimeError):
        await a.run(enqueue_then_fail)
    assert await b.wait_for_notify(0.5) is False

    # a notification that arrives between two waits is not lost
    [got] = await a.run(lambda tx: tx.claim(1, "a", LEASE, 1))
    await a.run(lambda tx: tx.release_all("a"))  # e.g. a node shutting down hands work back
    await asyncio.sleep(0.3)  # delivered while nobody waits
    assert got.item_id == "own"
    assert await b.wait_for_notify(5) is True
    assert await b.wait_for_notify(0.01) is False  # and taken by that one wait


async def test_the_listener_comes_back_after_its_connection_dies(
    pg: Callable[..., PostgresStore],
) -> None:
    a, b = await opened(pg), await opened(pg)
    assert await b.wait_for_notify(0.01) is False
    terminate(b)
    # it reconnects and reports a possible miss rather than sleeping through one
    assert await b.wait_for_notify(10) is True
    waiting = asyncio.ensure_future(b.wait_for_notify(10))
    await asyncio.sleep(0.05)
    await a.run(lambda tx: tx.enqueue(item("x")))
    assert await asyncio.wait_for(waiting, 10) is True


async def test_waiting_on_a_closed_store_is_refused(pg: Callable[..., PostgresStore]) -> None:
    store = await opened(pg)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.wait_for_notify(0.01)


# -- query plans --------------------------------------------------------------------------------


class Explain:
    """A connection for :class:`SqlTx` that records each statement's plan instead of running it.

    Parameters are inlined, so the planner sees their values, as it does when it plans a
    prepared statement's execution.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.plans: list[str] = []

    def execute(self, sql: str, params: Sequence[Any], /) -> Any:
        def value(m: re.Match[str]) -> str:
            return str(pg8000.native.literal(params[int(m[1]) - 1]))

        rows = self.raw.run("EXPLAIN " + re.sub(r"\$(\d+)", value, sql))
        self.plans.append("\n".join(r[0] for r in rows))
        return self

    rowcount = 0

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> Any:
        return None


def plan_of(raw: Any, verb: Callable[[SqlTx], object]) -> str:
    explain = Explain(raw)
    with contextlib.suppress(TypeError):  # a verb may choke on the empty answer
        verb(SqlTx(explain, POSTGRES, 0))
    [plan] = explain.plans
    return plan


async def test_claim_reads_an_index_when_most_items_are_not_due(
    pg: Callable[..., PostgresStore], pg_backend: Backend
) -> None:
    await (await opened(pg)).close()
    now = 10**12
    raw = pg_connect(pg_backend.url)
    try:
        # 100k items: sleeps due over the next days, in three priorities, and 50 due now
        raw.run(
            "INSERT INTO queue (item_id, kind, run_id, function_id, available_at, priority, "
            "payload, created_at) SELECT 'i' || g, 'sleep', 'r' || g, 'f', :now::bigint + 1000 + g * 10, "
            "g % 3 - 1, '{}', 0 FROM generate_series(1, 99950) g",
            now=now,
        )
        raw.run(
            "INSERT INTO queue (item_id, kind, run_id, function_id, available_at, priority, "
            "payload, created_at) SELECT 'd' || g, 'start', 'r' || g, 'f', :now::bigint - g, 0, '{}', 0 "
            "FROM generate_series(1, 50) g",
            now=now,
        )
        raw.run("ANALYZE queue")  # as autovacuum would after such a load
        plan = plan_of(raw, lambda tx: tx.claim(now, "a", LEASE, 10))
        next_due = plan_of(raw, lambda tx: tx.next_available_at())
    finally:
        raw.close()
    assert "Seq Scan" not in plan, plan
    assert "Index Scan using queue_by_available on queue" in plan, plan
    assert "LockRows" in plan, plan  # FOR UPDATE SKIP LOCKED
    assert "Seq Scan" not in next_due and "queue_by_available" in next_due, next_due


async def test_runs_are_listed_and_found_by_event_through_indexes(
    pg: Callable[..., PostgresStore], pg_backend: Backend
) -> None:
    await (await opened(pg)).close()
    raw = pg_connect(pg_backend.url)
    try:
        raw.run(
            "INSERT INTO runs (run_id, function_id, function_version, app_id, status, event_id, "
            "event_ids, created_at) SELECT 'r' || g, 'fn-' || (g % 50), 1, 'app', 'Completed', "
            "'e' || g, '[]', g FROM generate_series(1, 50000) g"
        )
        raw.run("INSERT INTO run_events SELECT 'e' || g, 'r' || g FROM generate_series(1, 50000) g")
        raw.run("ANALYZE runs")
        raw.run("ANALYZE run_events")
        by_function = plan_of(raw, lambda tx: tx.list_runs(RunFilter(function_id="fn-7")))
        by_status = plan_of(raw, lambda tx: tx.list_runs(RunFilter(status="Failed")))
        by_event = plan_of(raw, lambda tx: tx.runs_for_event("e77"))
    finally:
        raw.close()
    assert "Index Scan Backward using runs_by_function on runs" in by_function, by_function
    assert "runs_by_status" in by_status, by_status
    assert "run_events_pkey" in by_event and "runs_pkey" in by_event, by_event
    for plan in (by_function, by_status, by_event):
        assert "Seq Scan" not in plan, plan

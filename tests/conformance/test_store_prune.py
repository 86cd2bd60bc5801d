"""Retention: ended runs older than a cutoff go with their memo, links and unreferenced events;
everything a remaining run needs stays. ``stepwell prune`` drives it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from stepwell.cli.main import main
from stepwell.store.base import PruneCount, Store, Tx
from stepwell.store.records import EventRecord, RunFilter, RunRecord
from tests.support import free_port

CUTOFF = 10_000


def event(event_id: str, received_at: int) -> EventRecord:
    return EventRecord(event_id, "shop/order", {"id": event_id}, received_at, received_at)


def add_run(
    tx: Tx,
    run_id: str,
    event_ids: tuple[str, ...],
    created_at: int,
    ended_at: int | None,
    status: str = "Completed",
) -> None:
    tx.insert_run(
        RunRecord(
            run_id=run_id,
            function_id="shop-process",
            function_version=1,
            app_id="shop",
            status="Running",
            event_id=event_ids[0],
            event_ids=event_ids,
            created_at=created_at,
        )
    )
    tx.put_memo(run_id, "step-a", "a", "run", {"data": run_id}, created_at)
    tx.put_memo(run_id, "step-b", "b", "run", {"data": run_id}, created_at)
    if ended_at is not None:
        tx.finish_run(run_id, status, ended_at)  # type: ignore[arg-type]


def history(tx: Tx) -> None:
    """Old ended runs, an old run still going, a recent ended run, an event two runs share
    (one of them recent), an old event no run references, and a recent one."""
    for e, at in [("e1", 100), ("e2", 200), ("e3", 300), ("e4", 400), ("e5", 500)]:
        tx.insert_event(event(e, at))
    tx.insert_event(event("e6", 20_000))
    tx.insert_event(event("e7", 20_000))
    add_run(tx, "old-done", ("e1",), 1_000, 2_000)
    add_run(tx, "old-failed", ("e2", "e3"), 1_000, 3_000, "Failed")
    add_run(tx, "old-sleeping", ("e4",), 1_000, None)
    add_run(tx, "shares-e5", ("e5",), 1_500, 2_500, "Cancelled")
    add_run(tx, "recent-on-e5", ("e5",), 1_600, 15_000)
    add_run(tx, "recent", ("e6",), 20_000, 21_000)


async def remaining(store: Store) -> tuple[list[str], list[str], dict[str, int]]:
    def read(tx: Tx) -> tuple[list[str], list[str], dict[str, int]]:
        runs = sorted(r.run_id for r in tx.list_runs(RunFilter(limit=100)))
        events = sorted(e.event_id for e in tx.list_events(limit=100))
        memo = {r: len(tx.get_memo(r)) for r in ["old-done", "old-failed", "old-sleeping"]}
        return runs, events, memo

    return await store.read(read)


async def prune_all(store: Store, limit: int) -> tuple[PruneCount, int]:
    total, calls = PruneCount(), 0
    while True:
        calls += 1
        count = await store.run(lambda tx: tx.prune_ended_runs(CUTOFF, limit))
        total += count
        if count == PruneCount():
            return total, calls


async def test_pruning_deletes_ended_runs_before_the_cutoff_and_what_only_they_used(
    store: Store,
) -> None:
    await store.run(history)
    preview = await store.read(lambda tx: tx.prune_ended_runs(CUTOFF, 1, dry_run=True))

    total, calls = await prune_all(store, limit=1)

    assert total == PruneCount(runs=3, memo=6, run_events=4, events=3)
    assert preview == total
    assert calls > 3, "a limit of 1 must split the work into several transactions"
    runs, events, memo = await remaining(store)
    assert runs == ["old-sleeping", "recent", "recent-on-e5"]
    # e1..e3 went with their runs; e5 stays for the recent run that shares it; e4 belongs to a
    # run still going; e6 is recent; e7 started nothing but is recent too.
    assert events == ["e4", "e5", "e6", "e7"]
    assert memo == {"old-done": 0, "old-failed": 0, "old-sleeping": 2}
    shared = await store.read(lambda tx: tx.runs_for_event("e5"))
    assert [r.run_id for r in shared] == ["recent-on-e5"]


async def test_pruning_removes_old_events_no_run_references_and_is_safe_to_repeat(
    store: Store,
) -> None:
    def unreferenced(tx: Tx) -> None:
        tx.insert_event(event("lonely-old", 100))
        tx.insert_event(event("lonely-new", 50_000))

    await store.run(unreferenced)
    total, _ = await prune_all(store, limit=100)
    assert total == PruneCount(events=1)
    _, events, _ = await remaining(store)
    assert events == ["lonely-new"]
    assert await store.run(lambda tx: tx.prune_ended_runs(CUTOFF, 100)) == PruneCount()


async def test_stepwell_prune_deletes_what_the_cutoff_allows_and_dry_run_deletes_nothing(
    store: Store, store_url: str
) -> None:
    now = int(time.time() * 1000)
    day = 86_400_000

    def aged(tx: Tx) -> None:
        for n, age in enumerate([40, 35, 1]):
            tx.insert_event(event(f"e{n}", now - age * day))
            add_run(tx, f"r{n}", (f"e{n}",), now - age * day, now - age * day + 1)

    await store.run(aged)

    async def cli(*args: str) -> str:
        command = ["prune", "--older-than", "30d", "--database", store_url, *args]
        result = await asyncio.to_thread(CliRunner().invoke, main, command)
        assert result.exit_code == 0, result.output
        return str(result.output)

    assert (await cli("--dry-run")).startswith("would delete 2 runs ended before 20"), (
        "the dry run counts the two runs older than 30 days"
    )
    assert (await cli("--batch", "1")).startswith("deleted 2 runs")
    output = await cli()
    assert output.startswith("deleted 0 runs") and "0 events" in output
    runs = await store.read(lambda tx: tx.list_runs(RunFilter(limit=10)))
    assert [r.run_id for r in runs] == ["r2"]


async def test_stepwell_start_with_retention_prunes_old_runs_at_start(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    old = int(time.time() * 1000) - 40 * 86_400_000
    await store.run(
        lambda tx: (tx.insert_event(event("e0", old)), add_run(tx, "r0", ("e0",), old, old))
    )
    command = [
        sys.executable,
        *("-m", "stepwell.cli.main", "start", "--database", store_url),
        *("--signing-key", "signkey-test-" + "ab" * 32, "--event-key", "k"),
        *("--port", str(free_port()), "--retention", "30d"),
    ]
    with (tmp_path / "node.log").open("wb") as log:
        node = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while await store.read(lambda tx: tx.get_run("r0")) is not None:
            assert node.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "the old run was not pruned"
            await asyncio.sleep(0.1)
    finally:
        node.terminate()
        node.wait(timeout=20)
    assert "retention: deleted 1 runs" in (tmp_path / "node.log").read_text()


async def test_prune_keeps_events_a_debounce_holds_and_drops_skips_of_pruned_events(
    store: Store,
) -> None:
    from stepwell.store.records import DebounceRecord

    def setup(tx: Tx) -> None:
        tx.insert_event(event("held", 100))
        tx.insert_event(event("skipped", 100))
        tx.put_debounce(DebounceRecord("d:shop-digest:", "shop-digest", "r1", "held", 100, 900))
        tx.insert_skip("skipped", "shop-process", "rate limited", 100)

    await store.run(setup)
    await store.run(lambda tx: tx.prune_ended_runs(CUTOFF, 100))
    assert await store.read(lambda tx: tx.get_event("held")) is not None
    assert await store.read(lambda tx: tx.get_event("skipped")) is None
    assert await store.read(lambda tx: tx.skips_for_event("skipped")) == []


async def test_prune_drops_bulk_operations_that_ended_before_the_cutoff(store: Store) -> None:
    from stepwell.store.base import BulkRecord

    def bulk(job_id: str, ended_at: int | None) -> BulkRecord:
        state = "running" if ended_at is None else "done"
        return BulkRecord(
            job_id, "cancel", {}, state, 0, 0, 0, 0, (), None, None, None, None, 100, 100, ended_at
        )

    def setup(tx: Tx) -> None:
        for record in (bulk("old", 500), bulk("recent", 20_000), bulk("going", None)):
            tx.insert_bulk_operation(record)

    await store.run(setup)
    await store.run(lambda tx: tx.prune_ended_runs(CUTOFF, 100))
    left = [
        await store.read(lambda tx, j=j: tx.get_bulk_operation(j))
        for j in ("old", "recent", "going")
    ]
    assert [r.job_id if r else None for r in left] == [None, "recent", "going"]

"""What only the SQLite store promises: its file format, migrations, memory mode, query plans."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from stepwell.errors import StoreError
from stepwell.store import sqlite as sqlite_store
from stepwell.store.migrations import discover, split_statements
from stepwell.store.records import QueueItem
from stepwell.store.sqlite import SqliteStore


async def opened(path: Path) -> SqliteStore:
    store = SqliteStore(str(path))
    await store.open()
    return store


async def test_the_file_is_in_wal_mode_with_every_migration_recorded(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    for _ in range(2):  # reopening applies nothing twice
        await (await opened(db)).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in discover("sqlite")]


async def test_a_database_from_a_newer_stepwell_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await (await opened(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        await opened(db)


async def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        await opened(tmp_path / "no" / "such" / "dir.db")


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore("x.db", synchronous="SOMETIMES; DROP TABLE runs")
    with pytest.raises(ValueError):
        SqliteStore("x.db", readers=0)


async def test_memory_store_runs_and_reads() -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        item = QueueItem("x", "start", "r", "f", 5)
        results = await asyncio.gather(
            store.run(lambda tx: tx.enqueue(item)),
            store.run(lambda tx: 1 / 0),
            return_exceptions=True,
        )
        assert results[0] is True and isinstance(results[1], ZeroDivisionError)
        # a read's writes are rolled back
        await store.read(lambda tx: tx.delete_queue_item("x"))
        assert await store.read(lambda tx: tx.queue_depth()) == 1
    finally:
        await store.close()


async def test_claim_skip_scans_the_due_index(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await (await opened(db)).close()
    with sqlite3.connect(db) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT item_id FROM queue WHERE available_at <= 1 "
            "AND (lease_owner IS NULL OR lease_expires_at <= 1) "
            "ORDER BY priority, available_at LIMIT 5"
        ).fetchall()
    detail = " ".join(row[-1] for row in plan)
    # one range probe per priority, not a walk over every item that is not due yet
    assert "queue_by_due (ANY(priority) AND available_at<?)" in detail


def test_split_statements_respects_quotes_and_comments() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (a TEXT DEFAULT 'x;y');  /* block; comment */
    INSERT INTO "odd;name" VALUES ('it''s; fine');
    -- trailing comment only
    """
    assert split_statements(script) == [
        "-- a comment; with a semicolon\n    CREATE TABLE t (a TEXT DEFAULT 'x;y')",
        "/* block; comment */\n    INSERT INTO \"odd;name\" VALUES ('it''s; fine')",
    ]


async def test_a_batch_that_cannot_commit_fails_every_unit_then_recovers(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(str(db), busy_timeout_ms=50)
    await store.open()
    try:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        results = await asyncio.gather(
            *(store.run(lambda tx, n=n: tx.claim_cron_tick("f", n)) for n in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreError) and "locked" in str(r) for r in results)
        with pytest.raises(StoreError, match="locked"):  # a unit alone: a batch of one
            await store.run(lambda tx: tx.claim_cron_tick("f", 9))
        other.execute("ROLLBACK")
        other.close()

        assert await store.run(lambda tx: tx.claim_cron_tick("f", 1)) is True
        assert await store.read(lambda tx: tx.last_cron_tick("f")) == 1
    finally:
        await store.close()


async def test_keyed_wait_paths_seek_the_index_instead_of_walking_the_waits(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await (await opened(db)).close()
    with sqlite3.connect(db) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT match_path FROM waits WHERE event_name = 'e' "
            "AND match_path > '' ORDER BY match_path LIMIT 1"
        ).fetchall()
    detail = " ".join(row[-1] for row in plan)
    assert "waits_by_match (event_name=? AND match_path>?)" in detail
    assert "TEMP B-TREE" not in detail


def _wal_bytes(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _item(n: int) -> QueueItem:
    # A payload of ~3 KB: every commit writes a few pages.
    return QueueItem(f"i{n}", "start", f"r{n}", "f", n, payload={"pad": "x" * 3000})


WAL_BOUND = 24 * 2**20
"""The WAL file stays below this size while about 100 MB pass through it."""


async def test_the_wal_is_checkpointed_beside_the_writer_and_stays_small(tmp_path: Path) -> None:
    """The writer's commits do not checkpoint; a thread of the store's own does, and the log is
    rewound: one unit at a time (the checkpoint runs in the writer's pauses), and with units
    queued back to back (the writer then finishes what the thread could not)."""
    db = tmp_path / "s.db"
    store = await opened(db)
    try:
        assert f"stepwell-sqlite-wal:{db}" in {t.name for t in threading.enumerate()}
        for n in range(3000):
            await store.run(lambda tx, n=n: tx.enqueue(_item(n)))
        assert _wal_bytes(db) < WAL_BOUND
        for start in range(3000, 30000, 3000):
            await asyncio.gather(
                *(
                    store.run(lambda tx, n=n: tx.enqueue(_item(n)))
                    for n in range(start, start + 3000)
                )
            )
            assert _wal_bytes(db) < WAL_BOUND
        assert await store.read(lambda tx: tx.next_available_at()) == 0
    finally:
        await store.close()
    assert f"stepwell-sqlite-wal:{db}" not in {t.name for t in threading.enumerate()}
    with sqlite3.connect(db) as conn:  # everything reached the database file
        assert conn.execute("SELECT count(*) FROM queue").fetchone() == (30000,)


async def test_the_writer_checkpoints_when_the_wal_thread_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint thread that never checkpoints (as when it cannot open its connection)
    leaves the writer's backstop: the log stays bounded still."""
    monkeypatch.setattr(sqlite_store._WalCheckpoints, "_main", lambda self: None)
    db = tmp_path / "s.db"
    store = await opened(db)
    try:
        for start in range(0, 30000, 3000):
            await asyncio.gather(
                *(
                    store.run(lambda tx, n=n: tx.enqueue(_item(n)))
                    for n in range(start, start + 3000)
                )
            )
            assert _wal_bytes(db) < WAL_BOUND
    finally:
        await store.close()

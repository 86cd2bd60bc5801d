"""The SQLite store: one file in WAL mode, one writer thread with group commit, a few readers.

Writes. One connection, owned by one thread, does every write. :meth:`SqliteStore.run` hands
the writer a unit of work and awaits it. The writer takes the first waiting unit, drains every
other one already queued (up to :data:`MAX_BATCH`), opens ``BEGIN IMMEDIATE``, runs each unit in
its own ``SAVEPOINT`` (a unit that raises is rolled back to its savepoint alone; a batch of one
unit needs none) and commits once: one fsync for the whole batch. Only then are the callers
answered, each on its own event loop, so a returned ``run`` is on disk. If the transaction itself
fails (disk full, I/O error, another process holding the lock past ``busy_timeout_ms``), every
unit of the batch fails with :class:`~stepwell.errors.StoreError`.

Reads. A small thread pool, each thread with its own ``query_only`` connection; WAL lets them
read while the writer writes. Each :meth:`SqliteStore.read` is one deferred transaction, a
consistent snapshot that includes every commit whose ``run`` returned before.

WAL checkpoints. The writer's connection does not checkpoint on commit (SQLite's default,
``wal_autocheckpoint``, copies the log into the database file inside the commit that crosses
1,000 pages, and that commit's callers wait for the copy and its fsync). A thread of its own,
:class:`_WalCheckpoints`, with its own connection, checkpoints instead (``PASSIVE``, which never
blocks the writer) after every :data:`CHECKPOINT_EVERY` batches or
:data:`CHECKPOINT_EVERY_ROWS` rows written, whichever comes first. Once a checkpoint has copied
every frame, the writer's next transaction rewinds the log, so the WAL file stays small and is
rewritten in place. Under writes that never pause, a checkpoint running beside the writer may
never copy the very last frames; when the log has grown past :data:`CATCH_UP_FRAMES` that way,
the writer copies what is left itself, after answering its batch's callers. As a backstop it also
checkpoints itself after :data:`BACKSTOP_ROWS` rows without the log known to be short.

``":memory:"`` works too, for throwaway stores: there is then a single connection, and reads go
through the writer (in a savepoint that is always rolled back).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from stepwell.errors import StoreError
from stepwell.store import migrations
from stepwell.store.base import Tx
from stepwell.store.sql import SQLITE, SqlTx
from stepwell.store.units import Job, Outcome, settle
from stepwell.store.units import call as call_unit

T = TypeVar("T")

MAX_BATCH: Final = 256
"""Units of work committed together at most."""

CHECKPOINT_EVERY: Final = 64
"""Writer batches committed between two background WAL checkpoints, at most."""

CHECKPOINT_EVERY_ROWS: Final = 1000
"""Rows written between two background WAL checkpoints, at most: a batch of many units writes
many pages (the log's frames, which SQLite does not count for its callers)."""

CATCH_UP_FRAMES: Final = 1000
"""WAL frames (pages, ~4 MB) from which the writer finishes a background checkpoint itself:
the log is rewound only by a transaction that starts with every frame copied, which a
checkpoint running beside the writer seldom leaves it."""

BACKSTOP_ROWS: Final = 4 * CHECKPOINT_EVERY_ROWS
"""Rows written without the log known to be short, after which the writer checkpoints."""

log = logging.getLogger("stepwell.store.sqlite")

_SYNCHRONOUS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_MIN_SQLITE: Final = (3, 35, 0)  # RETURNING
_STOP: Final = object()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteStore:
    """A :class:`~stepwell.store.base.Store` on one SQLite file.

    Args:
        path: the database file (created if missing; its directory must exist), or
            ``":memory:"``.
        synchronous: SQLite's ``PRAGMA synchronous``: ``FULL`` (default) fsyncs every commit, so
            a committed unit survives power loss; ``NORMAL`` survives a process crash only.
        busy_timeout_ms: how long to wait for another process's lock before failing.
        readers: reader threads (and connections).
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        readers: int = 4,
    ) -> None:
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old: stepwell needs 3.35 or newer "
                "(for RETURNING); use a Python built against a newer SQLite"
            )
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {sorted(_SYNCHRONOUS)}, not {synchronous!r}"
            )
        if busy_timeout_ms < 0 or readers < 1:
            raise ValueError("busy_timeout_ms must be >= 0 and readers >= 1")
        self.path = path
        self._memory = path in ("", ":memory:")
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self._reader_count = readers
        # _lock guards _state and what it implies: a job is queued only while the store is
        # open, and _STOP is queued last, so the writer never leaves a job unanswered.
        self._lock = threading.Lock()
        self._state = "new"
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._open_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, {self._state})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, switch it to WAL, apply pending migrations, start the threads."""
        loop = asyncio.get_running_loop()
        if self._open_lock is None or self._open_lock[0] is not loop:
            self._open_lock = (loop, asyncio.Lock())  # asyncio locks belong to one loop
        async with self._open_lock[1]:
            if self._state == "open":
                return
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
            writer = threading.Thread(
                target=self._writer_main,
                args=(jobs, ready),
                name=f"stepwell-sqlite-writer:{self.path}",
                daemon=True,
            )
            writer.start()
            try:
                await asyncio.wrap_future(ready)
            except asyncio.CancelledError:
                jobs.put(_STOP)  # the writer may have opened by now; let it close again
                raise
            with self._lock:
                self._jobs, self._writer = jobs, writer
                self._local = threading.local()
                self._reader_conns = []
                if not self._memory:
                    self._readers = concurrent.futures.ThreadPoolExecutor(
                        self._reader_count, thread_name_prefix="stepwell-sqlite-reader"
                    )
                self._state = "open"

    async def close(self) -> None:
        """Commit what was submitted, stop the threads, close the connections."""
        with self._lock:
            if self._state != "open":
                return
            self._state = "closed"
            self._jobs.put(_STOP)
            writer, readers = self._writer, self._readers
            self._writer = self._readers = None
        await asyncio.to_thread(self._join, writer, readers)

    def _join(
        self,
        writer: threading.Thread | None,
        readers: concurrent.futures.ThreadPoolExecutor | None,
    ) -> None:
        if writer is not None:
            writer.join()
        if readers is not None:
            readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        self._reader_conns = []

    # -- units of work --------------------------------------------------------------------------

    async def run(self, work: Callable[[Tx], T]) -> T:
        """Execute ``work`` atomically on the writer; durable when this returns.

        If the caller is cancelled meanwhile, the unit may still commit.
        """
        return await self._submit(work, read_only=False)  # type: ignore[no-any-return]

    async def read(self, work: Callable[[Tx], T]) -> T:
        """Execute read-only ``work`` on a reader; it sees every commit that returned before."""
        if self._memory:
            return await self._submit(work, read_only=True)  # type: ignore[no-any-return]
        with self._lock:
            if self._state != "open" or self._readers is None:
                raise self._not_open()
            done = self._readers.submit(self._read_job, work)
        return await asyncio.wrap_future(done)

    def _submit(self, work: Callable[[Tx], Any], *, read_only: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._state != "open":
                raise self._not_open()
            self._jobs.put(Job(work, future, loop, read_only))
        return future

    def _not_open(self) -> StoreError:
        verb = "was closed" if self._state == "closed" else "is not open"
        return StoreError(f"the SQLite store {self.path!r} {verb}; call `await store.open()` first")

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN / COMMIT ourselves
                check_same_thread=False,  # created by one thread, closed by another
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite database {self.path!r}: {exc}") from exc

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            if not self._memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{self.path!r} could not be switched to WAL mode ({mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # validated in __init__
            if not self._memory:
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # _WalCheckpoints does it
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE: a second process opening the same new file waits, then sees the
        # versions the first one applied.
        conn.execute("BEGIN IMMEDIATE")
        try:
            known = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            applied = (
                [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
                if known
                else []
            )
            migrations.apply_pending(conn.execute, "sqlite", applied, _now_ms())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _read_job(self, work: Callable[[Tx], T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return call_unit(work, SqlTx(conn, SQLITE, _now_ms()))
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # -- the writer thread ----------------------------------------------------------------------

    def _writer_main(
        self, jobs: queue.SimpleQueue[Job | object], ready: concurrent.futures.Future[None]
    ) -> None:
        try:
            conn = self._open_writer()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        checkpoints = None if self._memory else _WalCheckpoints(self._checkpoint_conn, self.path)
        ready.set_result(None)
        try:
            while (batch := _next_batch(jobs)) is not None:
                jobs_, stop = batch
                if jobs_:
                    settle(jobs_, _commit(conn, jobs_))
                    if checkpoints is not None:
                        checkpoints.committed(conn)
                if stop:
                    return
        finally:
            if checkpoints is not None:
                checkpoints.stop()
            conn.close()

    def _checkpoint_conn(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            # A checkpoint syncs the log and the database file as the writer's commits would.
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            conn.close()
            raise
        return conn


class _WalCheckpoints:
    """A thread copying the WAL into the database file (``PRAGMA wal_checkpoint(PASSIVE)``)
    beside the writer, every :data:`CHECKPOINT_EVERY` batches or :data:`CHECKPOINT_EVERY_ROWS`
    rows; see the module's docstring.

    The writer checkpoints itself, after answering a batch's callers, when the thread last found
    the log :data:`CATCH_UP_FRAMES` long, and, as a backstop, when the thread has not found it
    short for :data:`BACKSTOP_ROWS` rows (the thread starved of CPU, or without a connection).
    :meth:`committed` and :meth:`stop` are called by the writer thread only.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], path: str) -> None:
        self._connect = connect
        self._due = threading.Event()
        self._stopping = False
        self._batches = 0
        self._rows_at = 0  # the writer's total_changes when it last signalled the thread
        self._rows_short = 0  # ... when the log was last known to be short
        self.catch_up = False
        """Set by the thread: the log was long at its last checkpoint."""
        self.short = False
        """Set by the thread: the log was short at its last checkpoint."""
        self._thread = threading.Thread(
            target=self._main, name=f"stepwell-sqlite-wal:{path}", daemon=True
        )
        self._thread.start()

    def committed(self, conn: sqlite3.Connection) -> None:
        """The writer committed a batch on ``conn``; its callers were answered."""
        rows = conn.total_changes
        if self.short:
            self.short, self._rows_short = False, rows
        if self.catch_up or rows - self._rows_short >= BACKSTOP_ROWS:
            frames, copied = _checkpoint(conn)
            self.catch_up = False
            if 0 <= copied == frames:  # every frame copied: the next transaction rewinds the log
                self._rows_short = rows
            else:  # a reader holds old frames, or the thread is checkpointing: a while later
                self._rows_short = rows - BACKSTOP_ROWS + CHECKPOINT_EVERY_ROWS
        self._batches += 1
        if self._batches >= CHECKPOINT_EVERY or rows - self._rows_at >= CHECKPOINT_EVERY_ROWS:
            self._batches, self._rows_at = 0, rows
            self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _main(self) -> None:
        try:
            conn = self._connect()
        except (StoreError, sqlite3.Error):
            log.exception("cannot open a connection for WAL checkpoints; the writer makes them")
            return
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                frames, _copied = _checkpoint(conn)
                if frames >= CATCH_UP_FRAMES:
                    self.catch_up = True
                elif frames >= 0:
                    self.short = True
        finally:
            conn.close()


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    """One passive WAL checkpoint on ``conn``: how many frames the log holds and how many of
    them are copied into the database file ((-1, -1): it failed)."""
    try:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # another process checkpointing, a full disk: next time
        log.warning("WAL checkpoint failed: %s", exc)
        return -1, -1
    return (-1, -1) if busy else (int(frames), int(copied))


def _next_batch(jobs: queue.SimpleQueue[Job | object]) -> tuple[list[Job], bool] | None:
    """Block for one job, then take what else is waiting; None once stopped."""
    first = jobs.get()
    if first is _STOP:
        return None
    batch = [first]
    while len(batch) < MAX_BATCH:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if job is _STOP:
            return _jobs(batch), True
        batch.append(job)
    return _jobs(batch), False


def _jobs(items: list[object]) -> list[Job]:
    return [j for j in items if isinstance(j, Job)]


def _commit(conn: sqlite3.Connection, batch: list[Job]) -> list[Outcome]:
    """Run a batch in one transaction, a savepoint per unit; one outcome per job."""
    tx = SqlTx(conn, SQLITE, _now_ms())
    if len(batch) == 1:
        return [_alone(conn, tx, batch[0])]
    try:
        conn.execute("BEGIN IMMEDIATE")
        outcomes = [_unit(conn, tx, job) for job in batch]
        conn.execute("COMMIT")
    except BaseException as exc:
        # The transaction as a whole failed (disk full, I/O error, lock timeout): no unit
        # of the batch is on disk, so none may report success.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return [(False, _batch_failed(exc, len(batch))) for _ in batch]
    return outcomes


def _batch_failed(exc: BaseException, size: int) -> BaseException:
    # One exception object per caller: each raise appends its own traceback to it.
    failure = StoreError(f"SQLite could not commit a batch of {size} units of work: {exc}")
    failure.__cause__ = exc
    return failure


def _alone(conn: sqlite3.Connection, tx: SqlTx, job: Job) -> Outcome:
    """A batch of one unit: its transaction is the unit's, so it needs no savepoint."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            value = call_unit(job.work, tx)
        except BaseException as exc:
            if not conn.in_transaction:
                raise  # SQLite rolled the transaction back itself: report it as a batch's
            conn.execute("ROLLBACK")
            return False, exc
        conn.execute("ROLLBACK" if job.read_only else "COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return False, _batch_failed(exc, 1)
    return True, value


def _unit(conn: sqlite3.Connection, tx: SqlTx, job: Job) -> Outcome:
    conn.execute("SAVEPOINT unit")
    try:
        value = call_unit(job.work, tx)
    except BaseException as exc:
        if not conn.in_transaction:
            raise  # SQLite rolled the whole transaction back: the batch fails
        conn.execute("ROLLBACK TO unit")
        conn.execute("RELEASE unit")
        return False, exc
    if job.read_only:  # a read served by the writer (memory mode) keeps nothing
        conn.execute("ROLLBACK TO unit")
    conn.execute("RELEASE unit")
    return True, value

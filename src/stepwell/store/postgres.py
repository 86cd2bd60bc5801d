"""The PostgreSQL store: group commit on writer threads, readers, SKIP LOCKED claims, NOTIFY.

The verbs are :class:`~stepwell.store.sql.SqlTx`'s, shared with SQLite; this module owns
connections, transactions and threads. The driver is pg8000 (pure Python, synchronous): every
connection belongs to one thread, and the event loop only ever awaits futures.

Writes. ``writers`` threads, each with its own connection, take units of work from one queue.
A writer takes the first waiting unit and every other one already queued (up to
:data:`MAX_BATCH`), runs them in one transaction, each inside a ``SAVEPOINT`` (a unit that
raises is rolled back alone and its exception re-raised to its caller) and commits once. With
two writers one batch commits while the next one runs.

Lost connections. A connection that died (server restart, ``pg_terminate_backend``, a network
cut) is replaced. If it died while idle, the next batch notices at ``BEGIN`` — before any unit
ran — and goes on over a new connection, unseen by its callers. If it dies during a batch, every
unit of the batch fails with :class:`~stepwell.errors.StoreError` and the next batch reconnects;
nothing of a failed batch landed, except when the connection died during ``COMMIT``, when the
server may have committed it: a caller that retries must expect that (the verbs are idempotent
or first-write-wins for this reason). A read whose connection died is retried once.

Several nodes. Any number of stores, in any number of processes, may share one database: claims
lock rows with ``FOR UPDATE SKIP LOCKED``, so a due item is claimed by exactly one node, and
migrations run under an advisory lock, so nodes starting together apply them once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import getpass
import os
import queue
import re
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pg8000.native
from pg8000.converters import make_params
from pg8000.core import SYNC_MSG, Context

from stepwell.errors import StoreError
from stepwell.store import migrations
from stepwell.store.base import Tx
from stepwell.store.records import AppRecord, FunctionRecord, QueueItem
from stepwell.store.sql import POSTGRES, SqlTx

# The group-commit plumbing is the SQLite store's: jobs, unit calls, answering the callers.
from stepwell.store.units import Job, Outcome, settle
from stepwell.store.units import call as call_unit

T = TypeVar("T")

MAX_BATCH: Final = 64
"""Units of work committed together at most. Each unit that writes is a subtransaction, and a
transaction with more than 64 of them overflows PostgreSQL's per-backend cache, which slows
every other session's snapshots while it runs."""

CONNECT_TIMEOUT_S: Final = 10.0
IO_TIMEOUT_S: Final = 60.0
"""How long one read from the server may block before its connection is given up for dead."""

_SCHEMES: Final = ("postgresql://", "postgres://")
_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")  # leaves room in a channel name
_SSLMODES: Final = ("disable", "prefer", "require", "verify-full")
_PREPARED_MAX: Final = 256
_MIGRATION_LOCK: Final = 0x5354_4550_5745_4C4C  # "STEPWELL"
_READ_BEGIN: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_LISTEN_POLL_S: Final = 1.0
_STOP: Final = object()
# SQLSTATEs after which a unit may simply be retried: serialization failure, deadlock, lock
# timeout.
_TRANSIENT: Final = ("40001", "40P01", "55P03")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- where to connect ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed ``postgresql://`` URL."""

    user: str
    host: str
    port: int
    database: str
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    """Where stepwell's tables live (created if missing); None: the server's ``search_path``."""
    sslmode: str = "prefer"

    def __str__(self) -> str:
        where = f"{self.user}@{self.host}:{self.port}/{self.database}"
        return f"{where} (schema {self.schema})" if self.schema else where


def parse_url(url: str) -> Target:
    """Parse ``postgresql://user:password@host:port/database?schema=NAME&sslmode=MODE``.

    ``postgres://`` works too. Defaults follow libpq: user = the OS user, host = localhost,
    port = 5432, database = the user name, password = ``$PGPASSWORD``, sslmode = prefer.

    Raises:
        ValueError: not a PostgreSQL URL, or a bad port, schema name, sslmode or option.
    """
    if not url.startswith(_SCHEMES):
        raise ValueError(f"not a PostgreSQL URL: {url!r}; use postgresql://user@host:port/db")
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ValueError(f"bad port in the PostgreSQL URL {parts.hostname!r}: {exc}") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"schema", "sslmode"})
    if unknown:
        raise ValueError(f"unsupported PostgreSQL URL options {unknown}: use schema, sslmode")
    schema = options.get("schema") or None
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema must match {_SCHEMA_NAME.pattern}, not {schema!r}")
    sslmode = options.get("sslmode", "prefer")
    if sslmode not in _SSLMODES:
        raise ValueError(f"sslmode must be one of {list(_SSLMODES)}, not {sslmode!r}")
    user = unquote(parts.username or "") or getpass.getuser()
    password = parts.password
    return Target(
        user=user,
        host=parts.hostname or "localhost",
        port=port,
        database=unquote(parts.path.lstrip("/")) or user,
        password=unquote(password) if password is not None else os.environ.get("PGPASSWORD"),
        schema=schema,
        sslmode=sslmode,
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_state(exc: BaseException) -> str:
    detail = exc.args[0] if isinstance(exc, pg8000.DatabaseError) and exc.args else None
    return str(detail.get("C", "")) if isinstance(detail, dict) else ""


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone (rather than a statement failing)."""
    if isinstance(exc, pg8000.InterfaceError | OSError):
        return True
    state = _sql_state(exc)
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


# -- one connection -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Result:
    """A statement's outcome, shaped like the DB-API cursor :class:`SqlTx` reads."""

    rows: list[Any]
    rowcount: int

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


class _Connection:
    """A pg8000 connection with the ``execute`` :class:`SqlTx` calls.

    Statements run as named prepared statements, cached per connection by their text (least
    recently used out first): after the first use, one round trip per execution and no parse.
    pg8000's ``prepare_statement`` / ``execute_named`` are what its own ``PreparedStatement``
    uses; we call them (and its message writers) to keep ``$n`` markers instead of its ``:name``
    ones, and to pipeline.

    Pipelining: :meth:`send` writes parameterless statements whose answer nobody waits for
    (``BEGIN``, ``RELEASE SAVEPOINT``, a read's ``ROLLBACK``) without waiting; they go out with
    the next statement, and their answers are read, in order, before its own. So a transaction's
    ``BEGIN`` costs no round trip of its own. An error answered to a sent statement is raised by
    the call that read it.
    """

    __slots__ = ("_pending", "_prepared", "_raw", "answered", "fileno")

    def __init__(self, target: Target, sslmode: str, application_name: str) -> None:
        sock = socket.create_connection((target.host, target.port), CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as libpq: no Nagle delays
        sock.settimeout(IO_TIMEOUT_S)
        self.fileno = sock.fileno()  # survives the TLS wrap, which takes over the socket
        try:
            self._raw = pg8000.native.Connection(
                target.user,
                host=target.host,
                port=target.port,
                database=target.database,
                password=target.password,
                sock=sock,
                ssl_context=_ssl_context(sslmode),
                application_name=application_name,
                startup_params={"search_path": target.schema} if target.schema else None,
            )
        except BaseException:
            sock.close()
            raise
        self._prepared: dict[str, tuple[Any, Any, Any]] = {}
        self._pending: list[Context] = []
        self.answered = 0
        """Answers read so far: whether the server answered anything since a given moment."""

    def execute(self, sql: str, params: Sequence[Any], /) -> _Result:
        raw = self._raw
        statement = self._prepared.pop(sql, None)
        if statement is None:
            self._answers()  # a prepare reads its own answer: take those before it first
            statement = raw.prepare_statement(sql, ())
            if len(self._prepared) >= _PREPARED_MAX:
                oldest = next(iter(self._prepared))
                raw.close_prepared_statement(self._prepared.pop(oldest)[0])
        self._prepared[sql] = statement  # (re)inserted last: the most recently used
        name, columns, decoders = statement
        context = Context(sql, columns=columns, input_funcs=decoders)
        raw.send_BIND(name, make_params(raw.py_types, params))
        raw.send_EXECUTE()
        raw._sock.write(SYNC_MSG)
        self._answers(context)
        return _Result(context.rows or [], context.row_count)

    def once(self, sql: str, params: Sequence[Any] = ()) -> _Result:
        """Run a statement unprepared (migrations, one-off queries)."""
        self._answers()
        raw = self._raw
        context = raw.execute_unnamed(sql, make_params(raw.py_types, params))
        return _Result(context.rows or [], context.row_count)

    def simple(self, sql: str) -> None:
        """Run one or more parameterless statements in one round trip (BEGIN, SAVEPOINT, ...)."""
        self.send(sql)
        self._answers()

    def send(self, sql: str, *, now: bool = False) -> None:
        """Send parameterless statements, leaving their answer to the next call to read.

        They go out with the next statement, or at once with ``now`` (a ``ROLLBACK`` that
        must not wait for the connection's next use to end its transaction).
        """
        self._raw.send_QUERY(sql)
        self._pending.append(Context(sql))
        if now:
            self._raw._sock.flush()

    def _answers(self, last: Context | None = None) -> None:
        """Send what is written, then read the pending answers and ``last``'s, in order; raise
        the first error once all are read (the connection stays in step with the server)."""
        waiting = self._pending
        if last is not None:
            waiting.append(last)
        if not waiting:
            return
        self._pending = []
        raw = self._raw
        try:
            raw._sock.flush()
        except OSError as exc:
            raise pg8000.InterfaceError("network error") from exc
        error: Exception | None = None
        for context in waiting:
            try:
                raw.handle_messages(context)
            except Exception as exc:
                if _connection_lost(exc):
                    raise
                error = error or exc
            self.answered += 1
        if error is not None:
            raise error

    def notifications(self) -> list[tuple[int, str, str]]:
        """Take the ``(pid, channel, payload)`` notifications received so far."""
        pending: Any = self._raw.notifications
        taken = list(pending)
        pending.clear()
        return taken

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()


@functools.cache
def _ssl_context(sslmode: str) -> ssl.SSLContext | bool:
    """pg8000's ``ssl_context`` for a resolved sslmode: False, or a context TLS is required with.

    Built once: pg8000 would otherwise build a default context, CA bundle and all, per connection.
    """
    if sslmode == "disable":
        return False
    if sslmode == "verify-full":
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # require: encrypted, not authenticated
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _migrate(conn: _Connection, schema: str | None) -> list[int]:
    """Bring the schema up to date in one transaction, serialised across nodes."""
    conn.simple("BEGIN")
    try:
        conn.once("SELECT pg_advisory_xact_lock($1)", (_MIGRATION_LOCK,))
        if schema is not None:
            conn.simple(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        [[known]] = conn.once("SELECT to_regclass('schema_migrations') IS NOT NULL").rows
        applied = (
            [r[0] for r in conn.once("SELECT version FROM schema_migrations").rows] if known else []
        )
        done = migrations.apply_pending(conn.once, "postgres", applied, _now_ms(), placeholder="$")
        conn.simple("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.simple("ROLLBACK")
        raise
    return done


class _PgTx(SqlTx):
    """:class:`SqlTx` over a batch: notes whether a unit made work due now, so the batch can
    NOTIFY, and reads the apps version once per batch.

    Every unit that routes events checks the apps version; reading it once per batch answers
    the same: the batch's units were all submitted before it began, so a sync that committed
    before any of them was submitted is in what the first read sees. A unit of the batch that
    writes apps or pauses, or rolls back, makes the next check read again.
    """

    __slots__ = ("_apps", "due")

    def __init__(self, conn: _Connection, now_ms: int) -> None:
        super().__init__(conn, POSTGRES, now_ms)
        self.due = False
        self._apps: tuple[int, int, int] | None = None

    def rolled_back(self, due: bool) -> None:
        """The current unit was rolled back: ``due`` as it was before it."""
        self.due = due
        self._apps = None

    def apps_version(self) -> tuple[int, int, int]:
        if self._apps is None:
            self._apps = super().apps_version()
        return self._apps

    def upsert_app(self, app: AppRecord) -> None:
        self._apps = None
        super().upsert_app(app)

    def set_paused(self, function_id: str, paused: bool, now: int) -> bool:
        self._apps = None
        return super().set_paused(function_id, paused, now)

    def upsert_function(
        self, function_id: str, app_id: str, config: dict[str, Any], checksum: str, now: int
    ) -> FunctionRecord:
        self._apps = None
        return super().upsert_function(function_id, app_id, config, checksum, now)

    def delete_functions_except(self, app_id: str, keep: Sequence[str]) -> int:
        self._apps = None
        return super().delete_functions_except(app_id, keep)

    def enqueue(self, item: QueueItem) -> bool:
        new = super().enqueue(item)
        # An item leased to its own node at creation (direct dispatch) is nobody else's news.
        self.due = self.due or (item.available_at <= self._now and item.lease_owner is None)
        return new

    def release(self, item_id: str, owner: str, available_at: int) -> bool:
        released = super().release(item_id, owner, available_at)
        self.due = self.due or (released and available_at <= self._now)
        return released

    def release_all(self, owner: str | None = None) -> int:
        count = super().release_all(owner)
        self.due = self.due or count > 0
        return count

    def unblock(self, key: str, count: int) -> int:
        freed = super().unblock(key, count)
        self.due = self.due or freed > 0
        return freed


# -- the store ----------------------------------------------------------------------------------


class PostgresStore:
    """A :class:`~stepwell.store.base.Store` on a PostgreSQL database, shareable by many nodes.

    Connections per store: ``writers`` + ``readers`` + one listener, the latter two opened on
    first use.

    Wake-ups: :meth:`wait_for_notify` lets an idle node sleep until another node commits work
    that is due now. Every batch in which a unit enqueued an item due now, or released leased
    items back to the queue, issues ``NOTIFY`` in the same transaction (so it is delivered only
    if the work committed) on a channel named for the store's schema. The first call opens a
    listener connection with a thread that ``LISTEN``\\ s; notifications from this store itself
    are ignored. A missed notification costs no work, only latency: callers still poll, e.g.
    ``await store.wait_for_notify(min(next_due - now, 30))``.

    Args:
        url: ``postgresql://user:password@host:port/database``, options ``schema`` (tables in
            that schema, created if missing) and ``sslmode`` (disable, prefer, require,
            verify-full); see :func:`parse_url`.
        writers: writer threads (and connections); two let one batch commit while the next runs.
        readers: reader threads (and connections).
    """

    def __init__(self, url: str, *, writers: int = 2, readers: int = 4) -> None:
        if writers < 1 or readers < 1:
            raise ValueError("writers and readers must be >= 1")
        self.target = parse_url(url)
        self._writer_count = writers
        self._reader_count = readers
        self.node_id = uuid.uuid4().hex
        """This store's name among the nodes: its connections' ``application_name`` is
        ``stepwell/<node_id>``, and its NOTIFY payload."""
        self._sslmode = self.target.sslmode
        self.channel = f"stepwell_due:{self.target.schema or ''}".rstrip(":")
        # _lock guards _state and what it implies: a job is queued only while the store is
        # open, and the _STOPs are queued last, so no writer leaves a job unanswered.
        self._lock = threading.Lock()
        self._state = "new"
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._writers: list[threading.Thread] = []
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_conns: set[_Connection] = set()
        self._local = threading.local()
        self._listener: _Listener | None = None
        self._open_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.target}, {self._state})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the writers, apply pending migrations, start the threads."""
        loop = asyncio.get_running_loop()
        if self._open_lock is None or self._open_lock[0] is not loop:
            self._open_lock = (loop, asyncio.Lock())  # asyncio locks belong to one loop
        async with self._open_lock[1]:
            if self._state == "open":
                return
            connecting = loop.run_in_executor(None, self._connect_writers)
            try:
                conns = await asyncio.shield(connecting)
            except asyncio.CancelledError:
                connecting.add_done_callback(_close_connections)
                raise
            jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
            threads = [
                threading.Thread(
                    target=self._writer_main,
                    args=(jobs, conn),
                    name=f"stepwell-pg-writer-{n}",
                    daemon=True,
                )
                for n, conn in enumerate(conns)
            ]
            for thread in threads:
                thread.start()
            with self._lock:
                self._jobs, self._writers = jobs, threads
                self._local = threading.local()
                self._readers = concurrent.futures.ThreadPoolExecutor(
                    self._reader_count, thread_name_prefix="stepwell-pg-reader"
                )
                self._state = "open"

    async def close(self) -> None:
        """Commit what was submitted, stop the threads, close the connections."""
        with self._lock:
            if self._state != "open":
                return
            self._state = "closed"
            for _ in self._writers:
                self._jobs.put(_STOP)
            writers, readers, listener = self._writers, self._readers, self._listener
            self._writers, self._readers, self._listener = [], None, None
        await asyncio.to_thread(self._join, writers, readers, listener)

    def _join(
        self,
        writers: list[threading.Thread],
        readers: concurrent.futures.ThreadPoolExecutor | None,
        listener: _Listener | None,
    ) -> None:
        for writer in writers:
            writer.join()
        if readers is not None:
            readers.shutdown(wait=True)
        with self._lock:
            conns, self._reader_conns = self._reader_conns, set()
        for conn in conns:
            conn.close()
        if listener is not None:
            listener.stop()

    # -- units of work --------------------------------------------------------------------------

    async def run(self, work: Callable[[Tx], T]) -> T:
        """Execute ``work`` atomically on a writer; durable when this returns.

        If the caller is cancelled meanwhile, the unit may still commit.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._state != "open":
                raise self._not_open()
            self._jobs.put(Job(work, future, loop, False))
        return await future  # type: ignore[no-any-return]

    async def read(self, work: Callable[[Tx], T]) -> T:
        """Execute read-only ``work`` on a reader, in one snapshot that includes every commit
        whose :meth:`run` returned before."""
        with self._lock:
            if self._state != "open" or self._readers is None:
                raise self._not_open()
            done = self._readers.submit(self._read_job, work)
        return await asyncio.wrap_future(done)

    async def wait_for_notify(self, timeout_s: float) -> bool:
        """Wait until another node commits work due now; False once ``timeout_s`` passed.

        A notification that arrived since the previous call returns True at once, and so does
        the first call after the listener had to reconnect (it may have missed some).
        """
        with self._lock:
            if self._state != "open":
                raise self._not_open()
            listener = self._listener
            if listener is None or listener.failed():
                listener = self._listener = _Listener(self._connect, self.channel, self.node_id)
        await asyncio.wrap_future(listener.ready)
        return await listener.wait(timeout_s)

    def _not_open(self) -> StoreError:
        verb = "was closed" if self._state == "closed" else "is not open"
        return StoreError(
            f"the PostgreSQL store {self.target} {verb}; call `await store.open()` first"
        )

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        try:
            name = f"stepwell/{self.node_id}"
            if self._sslmode != "prefer":
                return _Connection(self.target, self._sslmode, name)
            # prefer: TLS if the server offers it, decided on the first connection only
            try:
                conn = _Connection(self.target, "require", name)
            except pg8000.InterfaceError as exc:
                if "refuses SSL" not in str(exc):
                    raise
                self._sslmode = "disable"
                return _Connection(self.target, "disable", name)
            self._sslmode = "require"
            return conn
        except Exception as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self.target}: {exc}") from exc

    def _connect_writers(self) -> list[_Connection]:
        conns: list[_Connection] = []
        try:
            conns.append(self._connect())
            _migrate(conns[0], self.target.schema)
            conns.extend(self._connect() for _ in range(self._writer_count - 1))
        except BaseException:
            _close_connections(conns)
            raise
        return conns

    def _reader(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._reader_conns.add(conn)
        return conn

    def _drop_reader(self, conn: _Connection) -> None:
        self._local.conn = None
        with self._lock:
            self._reader_conns.discard(conn)
        conn.close()

    def _read_job(self, work: Callable[[Tx], T]) -> T:
        for attempt in (1, 2):  # a read is safe to repeat on a new connection
            conn = self._reader()
            try:
                conn.send(_READ_BEGIN)  # goes out with the first statement
                value = call_unit(work, SqlTx(conn, POSTGRES, _now_ms()))
            except Exception as exc:
                if not _connection_lost(exc):
                    self._end_read(conn)
                    raise
                self._drop_reader(conn)
                if attempt == 2:
                    raise StoreError(f"lost the connection to {self.target}: {exc}") from exc
                continue
            self._end_read(conn)
            return value
        raise AssertionError("unreachable")

    def _end_read(self, conn: _Connection) -> None:
        # Sent now, so that no snapshot is held, but answered to the connection's next use (a
        # lost connection is then a read retried on a new one).
        try:
            conn.send("ROLLBACK", now=True)
        except Exception:
            self._drop_reader(conn)

    # -- the writer threads ---------------------------------------------------------------------

    def _writer_main(self, jobs: queue.SimpleQueue[Job | object], conn: _Connection) -> None:
        current: _Connection | None = conn
        try:
            while (taken := _next_batch(jobs)) is not None:
                batch, stop = taken
                if batch:
                    current, outcomes = self._commit(current, batch)
                    settle(batch, outcomes)
                if stop:
                    return
        finally:
            if current is not None:
                current.close()

    def _commit(
        self, conn: _Connection | None, batch: list[Job]
    ) -> tuple[_Connection | None, list[Outcome]]:
        """Run a batch in one transaction, a savepoint per unit; one outcome per job.

        ``BEGIN`` goes out with the first statement. If the connection turns out dead before
        the server answered anything (it died while idle), nothing of the batch can have
        committed: the batch runs again on a new connection, unseen by its callers.
        """
        for attempt in (1, 2):
            if conn is None:
                try:
                    conn = self._connect()
                except Exception as exc:
                    failure = [(False, _batch_failed(exc, len(batch), self.target)) for _ in batch]
                    return None, failure
            answered = conn.answered
            try:
                return conn, self._units(conn, batch)
            except BaseException as exc:
                if attempt == 1 and _connection_lost(exc) and conn.answered == answered:
                    conn.close()
                    conn = None
                    continue
                # The transaction as a whole failed: no unit of the batch may report success.
                failed = [(False, _batch_failed(exc, len(batch), self.target)) for _ in batch]
                try:
                    conn.simple("ROLLBACK")
                except Exception:
                    conn.close()  # the connection is gone: the next batch opens another
                    return None, failed
                return conn, failed
        raise AssertionError("unreachable")

    def _units(self, conn: _Connection, batch: list[Job]) -> list[Outcome]:
        """The batch's units and its ``COMMIT``. Between units exactly one savepoint named
        ``unit`` is open: released before the next unit sets its own, or kept (empty) after a
        rollback to it."""
        conn.send("BEGIN; SAVEPOINT unit")
        tx = _PgTx(conn, _now_ms())
        outcomes = []
        for n, job in enumerate(batch):
            if n:
                conn.send("RELEASE SAVEPOINT unit; SAVEPOINT unit")
            outcomes.append(_unit(conn, tx, job))
        notify = f"NOTIFY {_ident(self.channel)}, '{self.node_id}'; " if tx.due else ""
        conn.simple(f"{notify}COMMIT")
        return outcomes


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
        if job is _STOP:  # each writer takes one _STOP, and leaves the others theirs
            return [j for j in batch if isinstance(j, Job)], True
        batch.append(job)
    return [j for j in batch if isinstance(j, Job)], False


UNIT_ATTEMPTS: Final = 3
"""How often a unit aborted by a deadlock or serialization failure is run again, in place."""


def _unit(conn: _Connection, tx: _PgTx, job: Job) -> Outcome:
    due = tx.due
    for attempt in range(1, UNIT_ATTEMPTS + 1):
        try:
            return True, call_unit(job.work, tx)
        except BaseException as exc:
            # Raises if the connection died: then the whole batch fails.
            conn.simple("ROLLBACK TO SAVEPOINT unit")
            tx.rolled_back(due)
            if _sql_state(exc) not in _TRANSIENT:
                return False, exc
            if attempt == UNIT_ATTEMPTS:
                failure = StoreError(f"PostgreSQL aborted this unit of work, retry it: {exc}")
                failure.__cause__ = exc
                return False, failure
            # Units only touch the transaction, so running one again is safe; the lock it
            # lost to is held by a unit that is going on, so this attempt gets it later.
    raise AssertionError("unreachable")


def _batch_failed(exc: BaseException, size: int, target: Target) -> BaseException:
    # One exception object per caller: each raise appends its own traceback to it.
    failure = StoreError(
        f"PostgreSQL at {target} could not commit a batch of {size} units of work: {exc}"
    )
    failure.__cause__ = exc
    return failure


def _close_connections(source: Any) -> None:
    """Close connections given as a list, or as a future of one (an open() cancelled)."""
    if isinstance(source, asyncio.Future):
        if source.cancelled() or source.exception() is not None:
            return
        source = source.result()
    for conn in source:
        conn.close()


# -- LISTEN -------------------------------------------------------------------------------------


class _Listener:
    """One connection that LISTENs on the store's channel, on a thread of its own.

    The thread sleeps in ``select`` on the socket. When the socket becomes readable, or every
    :data:`_LISTEN_POLL_S` (for a notification already read into pg8000's buffer, and to notice
    a dead connection), an empty query makes pg8000 take in what arrived.
    """

    def __init__(self, connect: Callable[[], _Connection], channel: str, node: str) -> None:
        self._connect = connect
        self._listen = f"LISTEN {_ident(channel)}"
        self._node = node
        self._lock = threading.Lock()
        self._pending = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = []
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name="stepwell-pg-listen", daemon=True)
        self._thread.start()

    def failed(self) -> bool:
        return self.ready.done() and self.ready.exception() is not None

    async def wait(self, timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pending or self._stop.is_set():
                woken, self._pending = self._pending, False
                return woken
            waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter[1], timeout_s)
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.remove(waiter)
                if waiter[1].done() and not waiter[1].cancelled() and waiter[1].result():
                    self._pending = False

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # closed already if the thread gave up
            self._wake_w.send(b"x")
        self._thread.join()
        self._wake_r.close()
        self._wake_w.close()
        self._wake(False)

    def _wake(self, woken: bool = True) -> None:
        with self._lock:
            self._pending = woken
            for loop, future in self._waiters:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(_set_result, future, woken)

    def _main(self) -> None:
        conn: _Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                    conn.simple(self._listen)
                    if self.ready.done():
                        self._wake()  # back after a gap: work may have been announced meanwhile
                    else:
                        self.ready.set_result(None)
                self._poll(conn)
            except Exception as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                if not self.ready.done():
                    self.ready.set_exception(exc)  # the next wait_for_notify starts another
                    self._wake_r.close()
                    self._wake_w.close()
                    return
                self._stop.wait(_LISTEN_POLL_S)
        if conn is not None:
            conn.close()

    def _poll(self, conn: _Connection) -> None:
        stop = self._wake_r.fileno()
        readable, _, _ = select.select([conn.fileno, stop], [], [], _LISTEN_POLL_S)
        if stop in readable:
            return
        conn.simple("")
        if any(payload != self._node for _, _, payload in conn.notifications()):
            self._wake()


def _set_result(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)

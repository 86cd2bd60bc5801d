"""The :class:`~stepwell.store.base.Tx` verbs in SQL, shared by every SQL backend.

The statements are written once, with ``?`` markers, in the subset SQLite and PostgreSQL share
(``ON CONFLICT``, ``RETURNING``, ``CASE``, ``COALESCE``, row locks aside). What differs between
dialects is a :class:`Dialect`: the parameter marker and the row-locking clause of a claim. JSON
columns are TEXT, (de)serialised here with orjson.

A :class:`SqlTx` wraps one DB-API connection that already has a transaction open; the backend
owns transactions, savepoints and threads.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Protocol, TypeVar, cast

import orjson

from stepwell.store.base import BulkRecord, PruneCount
from stepwell.store.records import (
    FINAL_STATUSES,
    INPUT_KIND,
    AppRecord,
    AttemptError,
    BatchRecord,
    ClaimCandidate,
    DebounceRecord,
    EventRecord,
    FunctionRecord,
    MemoRecord,
    QueueItem,
    RunFilter,
    RunRecord,
    RunStatus,
    WaitRecord,
)


class Cursor(Protocol):
    """The part of a DB-API cursor the verbs use."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the verbs use (sqlite3 has it; the PostgreSQL store wraps
    pg8000 to match)."""

    def execute(self, sql: str, parameters: Sequence[Any], /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between SQL backends, as small named hooks."""

    name: str
    placeholder: str = "?"
    """The parameter marker; ``$`` numbers them ``$1, $2, ...`` (PostgreSQL)."""
    claim_lock: str = ""
    """Appended to the claim's inner SELECT; PostgreSQL: ``FOR UPDATE SKIP LOCKED``."""
    key_lock: str = ""
    """A statement taking a transaction-scoped lock on one flow-control key (one parameter);
    empty where transactions are serial anyway (SQLite's single writer)."""
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, text: str) -> str:
        """``text`` with this dialect's parameter marker."""
        if self.placeholder == "?":
            return text
        out = self._cache.get(text)
        if out is None:
            if self.placeholder == "$":
                head, *rest = text.split("?")  # the shared SQL has no "?" but markers
                out = head + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))
            else:
                out = text.replace("?", self.placeholder)
            self._cache[text] = out
        return out


SQLITE = Dialect("sqlite")
POSTGRES = Dialect(
    "postgres",
    placeholder="$",
    claim_lock=" FOR UPDATE SKIP LOCKED",
    key_lock="SELECT pg_advisory_xact_lock(hashtextextended(?, 7))",
)
PARKED_AT = 1 << 62
"""``available_at`` of a blocked item: later than any claim looks."""

R = TypeVar("R")

_FINAL = "('Completed', 'Failed', 'Cancelled')"
FEW_EVENTS = 2000
"""Up to this many events of one name, runs by event name are found from the events."""


class _Shape(Generic[R]):
    """How one record maps to its table: columns named and ordered as the record's fields.

    JSON fields are TEXT; ``None`` is stored as SQL NULL and read back as ``None``.
    """

    __slots__ = ("_get", "_json", "_record", "_tuples", "columns", "names")

    def __init__(self, record: type[R], json: Iterable[str], tuples: Iterable[str] = ()) -> None:
        self._record = record
        self.names = [f.name for f in fields(record)]  # type: ignore[arg-type]
        self.columns = ", ".join('"user"' if n == "user" else n for n in self.names)
        json, tuples = frozenset(json), frozenset(tuples)
        # Positions, not names: every run, event and queue item goes through these two loops.
        self._json = [i for i, n in enumerate(self.names) if n in json]
        self._tuples = [i for i, n in enumerate(self.names) if n in tuples]
        getter = operator.attrgetter(*self.names)
        self._get: Callable[[R], tuple[Any, ...]] = (
            getter if len(self.names) > 1 else lambda record: (getter(record),)
        )

    def aliased(self, alias: str) -> str:
        """The column list qualified by a table alias."""
        return ", ".join(f"{alias}.{c}" for c in self.columns.split(", "))

    def params(self, record: R) -> list[Any]:
        """The record's values in column order, JSON fields encoded."""
        values = list(self._get(record))
        for i in self._json:
            value = values[i]
            if value is not None:
                values[i] = orjson.dumps(value).decode()
        return values

    def load(self, row: Sequence[Any]) -> R:
        """The record for a row selected with :attr:`columns`."""
        values = list(row)
        for i in self._json:
            value = values[i]
            if value is not None:
                values[i] = orjson.loads(value)
        for i in self._tuples:
            values[i] = tuple(values[i])
        return self._record(*values)


_APP = _Shape(AppRecord, ())
_FUNCTION = _Shape(FunctionRecord, ("config",))
_EVENT = _Shape(EventRecord, ("data", "user"))
_RUN = _Shape(RunRecord, ("event_ids", "output", "error", "flow_keys"), tuples=("event_ids",))
_DEBOUNCE = _Shape(DebounceRecord, ())
_ATTEMPT = _Shape(AttemptError, ("error",))
_BATCH = _Shape(BatchRecord, ("event_ids",), tuples=("event_ids",))
_MEMO = _Shape(MemoRecord, ("value", "input"))
_QUEUE = _Shape(QueueItem, ("payload",))
_WAIT = _Shape(WaitRecord, ())


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SqlTx:
    """The :class:`~stepwell.store.base.Tx` verbs over one connection inside a transaction.

    ``now_ms`` (wall clock) fills ``queue.created_at``, a diagnostic column no verb reads.
    """

    __slots__ = ("_conn", "_dialect", "_new_items", "_new_runs", "_now")

    def __init__(self, conn: Connection, dialect: Dialect, now_ms: int) -> None:
        self._conn = conn
        self._dialect = dialect
        self._now = now_ms
        # New runs and their first queue items, written together as multi-row inserts before
        # the next statement of the unit or at its end (see write_pending).
        self._new_runs: dict[str, RunRecord] = {}
        self._new_items: dict[str, QueueItem] = {}

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self._new_runs:
            self.write_pending()
        return self._conn.execute(self._dialect.sql(sql), params)

    def write_pending(self) -> None:
        """Write the new runs held back so far, with their trigger events' links and their
        start items: three multi-row inserts instead of three statements per run. Every other
        statement writes them first, so the unit reads what it wrote as if written at once;
        the unit runner calls this when the unit's work returns."""
        runs, items = list(self._new_runs.values()), list(self._new_items.values())
        self._new_runs, self._new_items = {}, {}
        links = [(e, r.run_id) for r in runs for e in dict.fromkeys(r.event_ids or (r.event_id,))]
        self._insert_rows("runs", _RUN.columns, len(_RUN.names), [_RUN.params(r) for r in runs])
        self._insert_rows("run_events", "event_id, run_id", 2, links)
        self._insert_rows(
            "queue",
            f"{_QUEUE.columns}, created_at",
            len(_QUEUE.names) + 1,
            [[*_QUEUE.params(i), self._now] for i in items],
        )

    def drop_pending(self) -> None:
        """Forget what :meth:`write_pending` would write: the unit failed and rolls back."""
        self._new_runs, self._new_items = {}, {}

    def _insert_rows(
        self, table: str, columns: str, width: int, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` with multi-row statements (runs of :data:`_CHUNKS` rows)."""
        row = f"({_marks(width)})"
        for chunk in _chunked(rows):
            params = [p for r in chunk for p in r]
            self._x(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))}", params
            )

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # fetchall, not fetchone: it steps the statement to its end, so none is left running.
        rows = self._x(sql, params).fetchall()
        return rows[0] if rows else None

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._x(sql, params).fetchall()

    def _changed(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._x(sql, params).rowcount

    def _get(self, shape: _Shape[R], sql: str, params: Sequence[Any]) -> R | None:
        row = self._one(f"SELECT {shape.columns} {sql}", params)
        return None if row is None else shape.load(row)

    def _list(self, shape: _Shape[R], sql: str, params: Sequence[Any] = ()) -> list[R]:
        return [shape.load(r) for r in self._all(f"SELECT {shape.columns} {sql}", params)]

    # -- apps and functions ---------------------------------------------------------------------

    def upsert_app(self, app: AppRecord) -> None:
        self._x(
            f"INSERT INTO apps ({_APP.columns}) VALUES ({_marks(7)}) "
            "ON CONFLICT (app_id) DO UPDATE SET url = excluded.url, sdk = excluded.sdk, "
            "framework = excluded.framework, checksum = excluded.checksum, "
            "synced_at = excluded.synced_at, error = excluded.error",
            _APP.params(app),
        )

    def get_app(self, app_id: str) -> AppRecord | None:
        return self._get(_APP, "FROM apps WHERE app_id = ?", (app_id,))

    def list_apps(self) -> list[AppRecord]:
        return self._list(_APP, "FROM apps ORDER BY app_id")

    def apps_version(self) -> tuple[int, int, int]:
        row = self._one(
            "SELECT COALESCE(MAX(synced_at), 0), COUNT(*), "
            "(SELECT COALESCE(MAX(changed_at), 0) FROM function_pauses) FROM apps"
        )
        return int(row[0]), int(row[1]), int(row[2])

    def set_paused(self, function_id: str, paused: bool, now: int) -> bool:
        # changed_at only moves forward, so the apps version always changes.
        return (
            self._changed(
                "INSERT INTO function_pauses (function_id, paused, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT (function_id) DO UPDATE SET paused = excluded.paused, "
                "changed_at = CASE WHEN function_pauses.changed_at < excluded.changed_at "
                "THEN excluded.changed_at ELSE function_pauses.changed_at + 1 END "
                "WHERE function_pauses.paused <> excluded.paused",
                (function_id, int(paused), now),
            )
            == 1
        )

    def paused_functions(self) -> list[str]:
        rows = self._all(
            "SELECT function_id FROM function_pauses WHERE paused = 1 ORDER BY function_id"
        )
        return [r[0] for r in rows]

    def upsert_function(
        self, function_id: str, app_id: str, config: dict[str, Any], checksum: str, now: int
    ) -> FunctionRecord:
        # The WHERE on DO UPDATE makes an unchanged checksum a no-op that returns no row.
        row = self._one(
            f"INSERT INTO functions ({_FUNCTION.columns}) VALUES (?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (function_id) DO UPDATE SET app_id = excluded.app_id, "
            "version = functions.version + 1, config = excluded.config, "
            "checksum = excluded.checksum, updated_at = excluded.updated_at "
            f"WHERE functions.checksum <> excluded.checksum RETURNING {_FUNCTION.columns}",
            (function_id, app_id, _dumps(config), checksum, now),
        )
        if row is not None:
            return _FUNCTION.load(row)
        stored = self._get(_FUNCTION, "FROM functions WHERE function_id = ?", (function_id,))
        assert stored is not None  # the conflict above proves the row exists
        return stored

    def list_functions(self, app_id: str | None = None) -> list[FunctionRecord]:
        if app_id is None:
            return self._list(_FUNCTION, "FROM functions ORDER BY function_id")
        return self._list(
            _FUNCTION, "FROM functions WHERE app_id = ? ORDER BY function_id", (app_id,)
        )

    def delete_functions_except(self, app_id: str, keep: Sequence[str]) -> int:
        keep = list(keep)
        not_in = f" AND function_id NOT IN ({_marks(len(keep))})" if keep else ""
        return self._changed(f"DELETE FROM functions WHERE app_id = ?{not_in}", [app_id, *keep])

    # -- events ---------------------------------------------------------------------------------

    def claim_dedupe_key(self, dedupe_key: str, event_id: str, now: int, ttl_ms: int) -> str | None:
        won = self._one(
            "INSERT INTO event_dedupe (dedupe_key, event_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (dedupe_key) DO UPDATE SET event_id = excluded.event_id, "
            "expires_at = excluded.expires_at WHERE event_dedupe.expires_at <= ? "
            "RETURNING event_id",
            (dedupe_key, event_id, now + ttl_ms, now),
        )
        if won is not None:
            return None
        held = self._one("SELECT event_id FROM event_dedupe WHERE dedupe_key = ?", (dedupe_key,))
        return cast(str, held[0])

    def insert_event(self, event: EventRecord) -> None:
        self._x(f"INSERT INTO events ({_EVENT.columns}) VALUES ({_marks(8)})", _EVENT.params(event))

    def get_event(self, event_id: str) -> EventRecord | None:
        return self._get(_EVENT, "FROM events WHERE event_id = ?", (event_id,))

    def get_events(self, event_ids: Sequence[str]) -> list[EventRecord]:
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return []
        found = self._list(_EVENT, f"FROM events WHERE event_id IN ({_marks(len(ids))})", ids)
        by_id = {e.event_id: e for e in found}
        return [by_id[i] for i in event_ids if i in by_id]

    def list_events(
        self, name: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        where, params = _where(("name = ?", name), ("event_id < ?", cursor))
        return self._list(
            _EVENT, f"FROM events WHERE {where} ORDER BY event_id DESC LIMIT ?", [*params, limit]
        )

    # -- runs -----------------------------------------------------------------------------------

    def insert_run(self, run: RunRecord) -> None:
        if run.run_id in self._new_runs:
            self.write_pending()  # the same id twice: the database refuses the second
        self._new_runs[run.run_id] = run  # written before the unit's next statement

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._get(_RUN, "FROM runs WHERE run_id = ?", (run_id,))

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        found: dict[str, RunRecord] = {}
        for chunk in _padded(list(dict.fromkeys(run_ids))):
            sql = f"FROM runs WHERE run_id IN ({_marks(len(chunk))})"
            found.update((r.run_id, r) for r in self._list(_RUN, sql, chunk))
        return list(found.values())

    def mark_run_started(self, run_id: str, attempt: int, now: int) -> None:
        self._x(
            "UPDATE runs SET status = 'Running', attempt = ?, started_at = COALESCE(started_at, ?) "
            f"WHERE run_id = ? AND status NOT IN {_FINAL}",
            (attempt, now, run_id),
        )

    def set_run_attempt(self, run_id: str, attempt: int) -> None:
        self._x("UPDATE runs SET attempt = ? WHERE run_id = ?", (attempt, run_id))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        now: int,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cancel_reason: str | None = None,
        started_at: int | None = None,
    ) -> bool:
        sql, params = _finish(run_id, status, now, output, error, cancel_reason, started_at)
        return self._changed(sql, params) == 1

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        now: int,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cancel_reason: str | None = None,
        started_at: int | None = None,
    ) -> RunRecord | None:
        sql, params = _finish(run_id, status, now, output, error, cancel_reason, started_at)
        row = self._one(f"{sql} RETURNING {_RUN.columns}", params)
        return None if row is None else _RUN.load(row)

    def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        by_event = ("run_id IN (SELECT run_id FROM run_events WHERE event_id = ?)", flt.event_id)
        return self._filtered_runs(flt, by_event)

    def runs_for_event(self, event_id: str) -> list[RunRecord]:
        rows = self._all(
            f"SELECT {_RUN.aliased('r')} FROM run_events e JOIN runs r ON r.run_id = e.run_id "
            "WHERE e.event_id = ? ORDER BY r.created_at, r.run_id",
            (event_id,),
        )
        return [_RUN.load(r) for r in rows]

    def count_runs(self, status: str | None = None) -> int:
        where, params = _where(("status = ?", status))
        return cast(int, self._one(f"SELECT COUNT(*) FROM runs WHERE {where}", params)[0])

    def find_child_runs(self, parent_run_id: str, parent_step_key: str) -> list[RunRecord]:
        return self._list(
            _RUN,
            "FROM runs WHERE parent_run_id = ? AND parent_step_key = ? ORDER BY created_at, run_id",
            (parent_run_id, parent_step_key),
        )

    # -- memo -----------------------------------------------------------------------------------

    def put_memo(
        self,
        run_id: str,
        step_key: str,
        step_id: str,
        kind: str,
        value: Any,
        now: int,
        started_at: int | None = None,
        attempts: int = 1,
        input: Any = None,
    ) -> bool:
        params = (run_id, step_key, step_id, kind, _dumps(value), 1, run_id, now, started_at)
        return self._changed(_memo_insert(1), (*params, attempts, _dumps(input))) == 1

    def put_memos(self, memos: Sequence[MemoRecord]) -> list[bool]:
        keys = [(m.run_id, m.step_key) for m in memos]
        if len(set(keys)) < len(keys):  # an upsert may not touch a row twice: one by one
            return [self.put_memo(*_memo_args(m)) for m in memos]
        written: set[tuple[str, str]] = set()
        for start in range(0, len(memos), _MEMO_ROWS):
            chunk = memos[start : start + _MEMO_ROWS]
            params: list[Any] = []
            rank: dict[str, int] = {}
            for m in chunk:
                # Each row's seq is the run's highest before the statement plus its rank.
                rank[m.run_id] = rank.get(m.run_id, 0) + 1
                run_id, step_key, step_id, kind, value, now, started, attempts, input = _memo_args(
                    m
                )
                params += (run_id, step_key, step_id, kind, _dumps(value), rank[m.run_id])
                params += (run_id, now, started, attempts, _dumps(input))
            rows = self._all(f"{_memo_insert(len(chunk))} RETURNING run_id, step_key", params)
            written.update((r[0], r[1]) for r in rows)
        return [key in written for key in keys]

    def get_memo(self, run_id: str, keys: Sequence[str] | None = None) -> list[MemoRecord]:
        if keys is None:
            sql = "FROM memo WHERE run_id = ? ORDER BY seq, step_key"
            return self._list(_MEMO, sql, (run_id,))
        found: list[MemoRecord] = []
        for chunk in _padded(list(dict.fromkeys(keys))):
            sql = f"FROM memo WHERE run_id = ? AND step_key IN ({_marks(len(chunk))})"
            found += self._list(_MEMO, sql, (run_id, *chunk))
        return sorted(found, key=lambda m: (m.seq, m.step_key))

    # -- queue ----------------------------------------------------------------------------------

    def enqueue(self, item: QueueItem) -> bool:
        if (
            item.kind == "start"
            and item.run_id in self._new_runs
            and item.item_id not in self._new_items
        ):
            # The first item of a run created in this unit, not yet written: it cannot exist.
            self._new_items[item.item_id] = item
            return True
        # Insert-else-update rather than one upsert, because only a plain INSERT tells "new"
        # from "existing" in both dialects. The loop covers the item being acked (deleted)
        # between the two statements by another node.
        while True:
            if self._changed(
                f"INSERT INTO queue ({_QUEUE.columns}, created_at) VALUES ({_marks(11)}) "
                "ON CONFLICT (item_id) DO NOTHING",
                [*_QUEUE.params(item), self._now],
            ):
                return True
            if self._changed(
                "UPDATE queue SET generation = generation + 1, available_at = "
                "CASE WHEN available_at < ? THEN available_at ELSE ? END WHERE item_id = ?",
                (item.available_at, item.available_at, item.item_id),
            ):
                return False

    def claim(self, now: int, owner: str, lease_ms: int, limit: int) -> list[QueueItem]:
        if limit <= 0:
            return []
        rows = self._all(
            "UPDATE queue SET lease_owner = ?, lease_expires_at = ? WHERE item_id IN ("
            "SELECT item_id FROM queue WHERE available_at <= ? "
            "AND (lease_owner IS NULL OR lease_expires_at <= ?) "
            f"ORDER BY priority, available_at, item_id LIMIT ?{self._dialect.claim_lock}) "
            f"RETURNING {_QUEUE.columns}",
            (owner, now + lease_ms, now, now, limit),
        )
        # RETURNING follows no ORDER BY; restore the claim order.
        items = map(_QUEUE.load, rows)
        return sorted(items, key=lambda i: (i.priority, i.available_at, i.item_id))

    def renew_leases(self, owner: str, item_ids: Sequence[str], until: int) -> int:
        ids = list(item_ids)
        if not ids:
            return 0
        return self._changed(
            "UPDATE queue SET lease_expires_at = ? "
            f"WHERE lease_owner = ? AND item_id IN ({_marks(len(ids))})",
            [until, owner, *ids],
        )

    def ack(self, item_id: str, owner: str, generation: int) -> bool:
        if self._changed(
            "DELETE FROM queue WHERE item_id = ? AND lease_owner = ? AND generation = ?",
            (item_id, owner, generation),
        ):
            return True
        self._drop_lease(item_id, owner)
        return False

    def _drop_lease(self, item_id: str, owner: str) -> None:
        self._x(
            "UPDATE queue SET lease_owner = NULL, lease_expires_at = NULL "
            "WHERE item_id = ? AND lease_owner = ?",
            (item_id, owner),
        )

    def release(self, item_id: str, owner: str, available_at: int) -> bool:
        return (
            self._changed(
                "UPDATE queue SET lease_owner = NULL, lease_expires_at = NULL, available_at = ? "
                "WHERE item_id = ? AND lease_owner = ?",
                (available_at, item_id, owner),
            )
            == 1
        )

    def release_all(self, owner: str | None = None) -> int:
        # No index on lease_owner: this runs at start and shutdown, and a partial index would
        # be rewritten by every claim and ack.
        which = "lease_owner IS NOT NULL" if owner is None else "lease_owner = ?"
        return self._changed(
            f"UPDATE queue SET lease_owner = NULL, lease_expires_at = NULL WHERE {which}",
            () if owner is None else (owner,),
        )

    def delete_queue_items(self, run_id: str) -> int:
        return self._changed("DELETE FROM queue WHERE run_id = ?", (run_id,))

    def delete_queue_item(self, item_id: str) -> bool:
        return self._changed("DELETE FROM queue WHERE item_id = ?", (item_id,)) == 1

    def next_available_at(self) -> int | None:
        row = self._one("SELECT MIN(available_at) FROM queue WHERE lease_owner IS NULL")
        return cast("int | None", row[0])

    def queue_depth(self) -> int:
        return cast(int, self._one("SELECT COUNT(*) FROM queue")[0])

    # -- flow control ---------------------------------------------------------------------------

    def claim_candidates(self, now: int, limit: int) -> list[ClaimCandidate]:
        if limit <= 0:
            return []
        rows = self._all(
            f"SELECT {_QUEUE.columns}, admitted FROM queue WHERE available_at <= ? "
            "AND (lease_owner IS NULL OR lease_expires_at <= ?) "
            f"ORDER BY priority, available_at, item_id LIMIT ?{self._dialect.claim_lock}",
            (now, now, limit),
        )
        return [ClaimCandidate(_QUEUE.load(r[:-1]), bool(r[-1])) for r in rows]

    def lock_keys(self, keys: Sequence[str]) -> None:
        if self._dialect.key_lock:
            for key in sorted(set(keys)):
                self._x(self._dialect.key_lock, (key,))

    def lease(self, item_id: str, owner: str, until: int, keys: Sequence[str] = ()) -> None:
        key1, key2 = (*keys, None, None)[:2]
        self._x(
            "UPDATE queue SET lease_owner = ?, lease_expires_at = ?, admitted = 1, "
            "concurrency_key1 = ?, concurrency_key2 = ?, blocked_on = NULL, blocked_at = NULL "
            "WHERE item_id = ?",
            (owner, until, key1, key2, item_id),
        )

    def count_in_flight(self, key: str, now: int) -> int:
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM queue WHERE concurrency_key1 = ? "
            "AND lease_owner IS NOT NULL AND lease_expires_at > ?) + "
            "(SELECT COUNT(*) FROM queue WHERE concurrency_key2 = ? "
            "AND lease_owner IS NOT NULL AND lease_expires_at > ?)",
            (key, now, key, now),
        )
        return int(row[0])

    def block(self, item_id: str, key: str) -> None:
        self._x(
            "UPDATE queue SET blocked_on = ?, blocked_at = available_at, available_at = ?, "
            "lease_owner = NULL, lease_expires_at = NULL WHERE item_id = ?",
            (key, PARKED_AT, item_id),
        )

    def unblock(self, key: str, count: int) -> int:
        if count <= 0:
            return 0
        return self._changed(
            # blocked_on is checked again outside the subquery: on PostgreSQL a row another
            # unit changed meanwhile is re-checked against the outer condition only.
            "UPDATE queue SET available_at = blocked_at, blocked_on = NULL, blocked_at = NULL "
            "WHERE blocked_on = ? AND item_id IN (SELECT item_id FROM queue WHERE blocked_on = ? "
            "ORDER BY blocked_at, item_id LIMIT ?)",
            (key, key, count),
        )

    def blocked_keys(self, limit: int = 100) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT blocked_on FROM queue WHERE blocked_on IS NOT NULL LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]

    def defer_start(self, item_id: str, available_at: int) -> None:
        self._x(
            "UPDATE queue SET available_at = ?, admitted = 1, lease_owner = NULL, "
            "lease_expires_at = NULL WHERE item_id = ?",
            (available_at, item_id),
        )

    def get_bucket(self, bucket_key: str) -> int | None:
        row = self._one("SELECT tat FROM flow_buckets WHERE bucket_key = ?", (bucket_key,))
        return None if row is None else int(row[0])

    def put_bucket(self, bucket_key: str, tat: int, expires_at: int) -> None:
        self._x(
            "INSERT INTO flow_buckets (bucket_key, tat, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (bucket_key) DO UPDATE SET tat = excluded.tat, "
            "expires_at = excluded.expires_at",
            (bucket_key, tat, expires_at),
        )

    def delete_expired_buckets(self, now: int, limit: int = 1000) -> int:
        return self._changed(
            "DELETE FROM flow_buckets WHERE bucket_key IN (SELECT bucket_key FROM flow_buckets "
            "WHERE expires_at < ? LIMIT ?)",
            (now, limit),
        )

    def insert_attempt_error(self, record: AttemptError) -> None:
        self._x(
            f"INSERT INTO attempt_errors ({_ATTEMPT.columns}) VALUES ({_marks(6)}) "
            "ON CONFLICT (run_id, step_key, attempt) DO NOTHING",
            _ATTEMPT.params(record),
        )

    def list_attempt_errors(self, run_id: str) -> list[AttemptError]:
        return self._list(
            _ATTEMPT, "FROM attempt_errors WHERE run_id = ? ORDER BY failed_at, attempt", (run_id,)
        )

    def get_debounce(self, debounce_key: str) -> DebounceRecord | None:
        return self._get(_DEBOUNCE, "FROM debounces WHERE debounce_key = ?", (debounce_key,))

    def put_debounce(self, record: DebounceRecord) -> None:
        self._x(
            f"INSERT INTO debounces ({_DEBOUNCE.columns}) VALUES ({_marks(6)}) "
            "ON CONFLICT (debounce_key) DO UPDATE SET event_id = excluded.event_id, "
            "due_at = excluded.due_at",
            _DEBOUNCE.params(record),
        )

    def delete_debounce(self, debounce_key: str, run_id: str) -> bool:
        return (
            self._changed(
                "DELETE FROM debounces WHERE debounce_key = ? AND run_id = ?",
                (debounce_key, run_id),
            )
            == 1
        )

    def get_batch(self, batch_key: str) -> BatchRecord | None:
        return self._get(_BATCH, "FROM batches WHERE batch_key = ?", (batch_key,))

    def put_batch(self, record: BatchRecord) -> None:
        self._x(
            f"INSERT INTO batches ({_BATCH.columns}) VALUES ({_marks(5)}) "
            "ON CONFLICT (batch_key) DO UPDATE SET event_ids = excluded.event_ids",
            _BATCH.params(record),
        )

    def delete_batch(self, batch_key: str, run_id: str) -> bool:
        return (
            self._changed(
                "DELETE FROM batches WHERE batch_key = ? AND run_id = ?", (batch_key, run_id)
            )
            == 1
        )

    def insert_skip(self, event_id: str, function_id: str, reason: str, now: int) -> None:
        self._x(
            "INSERT INTO skips (event_id, function_id, reason, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (event_id, function_id) DO NOTHING",
            (event_id, function_id, reason, now),
        )

    def skips_for_event(self, event_id: str) -> list[tuple[str, str]]:
        rows = self._all(
            "SELECT function_id, reason FROM skips WHERE event_id = ? ORDER BY function_id",
            (event_id,),
        )
        return [(r[0], r[1]) for r in rows]

    def singleton_runs(self, singleton_key: str) -> list[RunRecord]:
        return self._list(
            _RUN,
            f"FROM runs WHERE singleton_key = ? AND status NOT IN {_FINAL} ORDER BY run_id",
            (singleton_key,),
        )

    # -- waits ----------------------------------------------------------------------------------

    def insert_wait(self, wait: WaitRecord) -> bool:
        return (
            self._changed(
                f"INSERT INTO waits ({_WAIT.columns}) VALUES ({_marks(12)}) ON CONFLICT DO NOTHING",
                _WAIT.params(wait),
            )
            == 1
        )

    def keyed_wait_paths(self, event_name: str) -> list[str]:
        # A skip scan by hand: one index seek per distinct path (there are a handful), where
        # SELECT DISTINCT would walk every keyed wait on the event name.
        paths: list[str] = []
        after = ""
        while True:
            row = self._one(
                "SELECT match_path FROM waits WHERE event_name = ? AND match_path > ? "
                "ORDER BY match_path LIMIT 1",
                (event_name, after),
            )
            if row is None:
                return paths
            after = row[0]
            paths.append(after)

    def find_keyed_waits(
        self, event_name: str, match_path: str, match_value: str
    ) -> list[WaitRecord]:
        return self._list(
            _WAIT,
            "FROM waits WHERE event_name = ? AND match_path = ? AND match_value = ? "
            "ORDER BY wait_id",
            (event_name, match_path, match_value),
        )

    def find_unkeyed_waits(self, event_name: str) -> list[WaitRecord]:
        return self._list(
            _WAIT,
            "FROM waits WHERE event_name = ? AND match_path IS NULL ORDER BY wait_id",
            (event_name,),
        )

    def get_wait(self, run_id: str, step_key: str) -> WaitRecord | None:
        return self._get(_WAIT, "FROM waits WHERE run_id = ? AND step_key = ?", (run_id, step_key))

    def delete_wait(self, wait_id: str) -> bool:
        return self._changed("DELETE FROM waits WHERE wait_id = ?", (wait_id,)) == 1

    def delete_run_waits(self, run_id: str) -> int:
        return self._changed("DELETE FROM waits WHERE run_id = ?", (run_id,))

    # -- events and waits by the batch (ingest) ---------------------------------------------------

    def insert_events(self, events: Sequence[EventRecord]) -> None:
        rows = [_EVENT.params(event) for event in events]
        self._insert_rows("events", _EVENT.columns, len(_EVENT.names), rows)

    def claim_dedupe_keys(
        self, claims: Sequence[tuple[str, str]], now: int, ttl_ms: int
    ) -> dict[str, str]:
        # One row per key in a statement: an upsert may not touch a row twice.
        firsts: dict[str, str] = {}
        for key, event_id in claims:
            firsts.setdefault(key, event_id)
        first = list(firsts.items())
        holders: dict[str, str] = {}
        for chunk in _chunked(first):
            params = [v for key, event_id in chunk for v in (key, event_id, now + ttl_ms)]
            won = self._all(
                f"INSERT INTO event_dedupe (dedupe_key, event_id, expires_at) VALUES "
                f"{', '.join(['(?, ?, ?)'] * len(chunk))} "
                "ON CONFLICT (dedupe_key) DO UPDATE SET event_id = excluded.event_id, "
                "expires_at = excluded.expires_at WHERE event_dedupe.expires_at <= ? "
                "RETURNING dedupe_key",
                [*params, now],
            )
            claimed = dict(chunk)
            for (key,) in won:
                holders[key] = claimed[key]
        lost = [key for key, _ in first if key not in holders]
        for keys in _padded(lost):
            rows = self._all(
                "SELECT dedupe_key, event_id FROM event_dedupe "
                f"WHERE dedupe_key IN ({_marks(len(keys))})",
                keys,
            )
            holders.update((key, event_id) for key, event_id in rows)
        return holders

    def waited_event_names(self, event_names: Sequence[str]) -> set[str]:
        sql = "SELECT 1 FROM waits WHERE event_name = ? LIMIT 1"
        return {name for name in dict.fromkeys(event_names) if self._one(sql, (name,))}

    def find_keyed_waits_among(
        self, event_name: str, match_path: str, match_values: Sequence[str]
    ) -> list[WaitRecord]:
        found: list[WaitRecord] = []
        for chunk in _padded(list(dict.fromkeys(match_values))):
            found += self._list(
                _WAIT,
                "FROM waits WHERE event_name = ? AND match_path = ? "
                f"AND match_value IN ({_marks(len(chunk))}) ORDER BY wait_id",
                (event_name, match_path, *chunk),
            )
        if len(match_values) > _CHUNKS[0]:
            found.sort(key=lambda w: w.wait_id)
        return found

    # -- cron -----------------------------------------------------------------------------------

    def claim_cron_tick(self, function_id: str, tick_at: int) -> bool:
        return (
            self._changed(
                "INSERT INTO cron_ticks (function_id, tick_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                (function_id, tick_at),
            )
            == 1
        )

    def last_cron_tick(self, function_id: str) -> int | None:
        row = self._one("SELECT MAX(tick_at) FROM cron_ticks WHERE function_id = ?", (function_id,))
        return cast("int | None", row[0])

    # -- dashboard ------------------------------------------------------------------------------

    def list_runs_for_event_name(self, event_name: str, flt: RunFilter) -> list[RunRecord]:
        # Two plans, both on indexes. A name with few events: list its events (events_by_name),
        # their runs (run_events) and sort those. A name with many: walk the runs newest first
        # and keep those whose first trigger event has the name (one primary-key probe each),
        # which stops after a page because matches are dense. Batches and reruns share their
        # events' name, so both plans select the same runs.
        few = (
            self._one(
                "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE name = ? LIMIT ?) AS found",
                (event_name, FEW_EVENTS + 1),
            )[0]
            <= FEW_EVENTS
        )
        if few:
            by_name = (
                "run_id IN (SELECT re.run_id FROM events e JOIN run_events re "
                "ON re.event_id = e.event_id WHERE e.name = ?)"
            )
        else:
            by_name = "(SELECT e.name FROM events e WHERE e.event_id = runs.event_id) = ?"
        return self._filtered_runs(flt, (by_name, event_name))

    def _filtered_runs(self, flt: RunFilter, *extra: tuple[str, Any]) -> list[RunRecord]:
        where, params = _where(
            ("function_id = ?", flt.function_id),
            ("status = ?", flt.status),
            ("created_at >= ?", flt.since),
            ("created_at < ?", flt.until),
            *extra,
        )
        if flt.cursor is not None:
            row = self._one("SELECT created_at FROM runs WHERE run_id = ?", (flt.cursor,))
            if row is None:
                return []
            where += " AND (created_at, run_id) < (?, ?)"
            params += [row[0], flt.cursor]
        return self._list(
            _RUN,
            f"FROM runs WHERE {where} ORDER BY created_at DESC, run_id DESC LIMIT ?",
            [*params, flt.limit],
        )

    def list_run_queue_items(self, run_id: str) -> list[QueueItem]:
        return self._list(
            _QUEUE, "FROM queue WHERE run_id = ? ORDER BY available_at, item_id", (run_id,)
        )

    def list_run_waits(self, run_id: str) -> list[WaitRecord]:
        return self._list(_WAIT, "FROM waits WHERE run_id = ? ORDER BY wait_id", (run_id,))

    def count_runs_per_minute(self, since: int, until: int) -> list[tuple[str, int, str, int]]:
        # Both bounds on created_at, so the planner takes the range of runs_by_created even
        # before ANALYZE has measured the table.
        started = "(created_at / 60000) * 60000"
        ended = "(ended_at / 60000) * 60000"
        window = "created_at >= ? AND created_at < ?"
        rows = self._all(
            f"SELECT function_id, {started}, 'started', COUNT(*) FROM runs "
            f"WHERE {window} GROUP BY function_id, {started} "
            f"UNION ALL SELECT function_id, {ended}, status, COUNT(*) FROM runs "
            f"WHERE {window} AND ended_at >= ? GROUP BY function_id, {ended}, status "
            "ORDER BY 1, 2, 3",
            (since, until, since, until, since),
        )
        return [(str(f), int(m), str(k), int(c)) for f, m, k, c in rows]

    def count_runs_by_status(self) -> dict[str, int]:
        rows = self._all("SELECT status, COUNT(*) FROM runs GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    # -- retention ------------------------------------------------------------------------------

    def prune_ended_runs(self, ended_before: int, limit: int, dry_run: bool = False) -> PruneCount:
        # created_at <= ended_at, so the created_at bound lets each status's range of
        # runs_by_status serve the search.
        ended = f"status IN {_FINAL} AND created_at < ? AND ended_at < ?"
        # An event no run references may still be held by a pending debounce (batches live
        # 60 s at most, shorter than any retention).
        orphan = (
            "NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = events.event_id) "
            "AND NOT EXISTS (SELECT 1 FROM run_events re WHERE re.event_id = events.event_id"
        )
        if dry_run:
            prunable = f"SELECT run_id FROM runs WHERE {ended}"
            bounds = (ended_before, ended_before)
            count = "SELECT COUNT(*) FROM"
            return PruneCount(
                runs=self._one(f"{count} runs WHERE {ended}", bounds)[0],
                memo=self._one(f"{count} memo WHERE run_id IN ({prunable})", bounds)[0],
                run_events=self._one(f"{count} run_events WHERE run_id IN ({prunable})", bounds)[0],
                events=self._one(
                    f"{count} events WHERE received_at < ? AND {orphan} "
                    f"AND re.run_id NOT IN ({prunable}))",
                    (ended_before, *bounds),
                )[0],
            )
        rows = self._all(
            f"SELECT run_id, event_ids FROM runs WHERE {ended} ORDER BY created_at, run_id LIMIT ?",
            (ended_before, ended_before, limit),
        )
        run_ids = [r[0] for r in rows]
        links = [(e, r[0]) for r in rows for e in dict.fromkeys(_loads(r[1]))]
        memo = runs = run_events = 0
        if run_ids:
            marks = _marks(len(run_ids))
            memo = self._changed(f"DELETE FROM memo WHERE run_id IN ({marks})", run_ids)
            self._x(f"DELETE FROM attempt_errors WHERE run_id IN ({marks})", run_ids)
            for event_id, run_id in links:
                run_events += self._changed(
                    "DELETE FROM run_events WHERE event_id = ? AND run_id = ?", (event_id, run_id)
                )
            runs = self._changed(f"DELETE FROM runs WHERE run_id IN ({marks})", run_ids)
        # Oldest first by primary key: the events of the runs just deleted, and events that
        # never started a run (system events, events that resumed waits or matched nothing).
        events = self._changed(
            "DELETE FROM events WHERE event_id IN (SELECT event_id FROM events "
            f"WHERE received_at < ? AND {orphan}) ORDER BY event_id LIMIT ?)",
            (ended_before, limit),
        )
        # Why events started no run goes with the events.
        self._x(
            "DELETE FROM skips WHERE event_id IN (SELECT event_id FROM skips WHERE created_at < ? "
            "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = skips.event_id) "
            "ORDER BY created_at LIMIT ?)",
            (ended_before, limit),
        )
        # Bulk operations that finished before the cutoff (a handful of rows; no index needed).
        self._x("DELETE FROM bulk_operations WHERE ended_at < ?", (ended_before,))
        return PruneCount(runs=runs, memo=memo, run_events=run_events, events=events)

    # -- bulk operations ------------------------------------------------------------------------

    def insert_bulk_operation(self, record: BulkRecord) -> None:
        self._x(
            f"INSERT INTO bulk_operations ({_BULK.columns}) VALUES ({_marks(len(_BULK.names))})",
            _BULK.params(record),
        )

    def get_bulk_operation(self, job_id: str) -> BulkRecord | None:
        return self._get(_BULK, "FROM bulk_operations WHERE job_id = ?", (job_id,))

    def resumable_bulk_operations(self, now: int, limit: int = 10) -> list[str]:
        rows = self._all(
            f"SELECT job_id FROM bulk_operations WHERE {_UNFINISHED} "
            "AND (lease_expires_at IS NULL OR lease_expires_at <= ?) ORDER BY job_id LIMIT ?",
            (now, limit),
        )
        return [r[0] for r in rows]

    def lease_bulk_operation(
        self, job_id: str, owner: str, token: str, now: int, until: int
    ) -> BulkRecord | None:
        # One conditional UPDATE: on PostgreSQL a racing node waits for the row lock, then
        # finds the lease no longer expired and updates nothing.
        row = self._one(
            "UPDATE bulk_operations SET lease_owner = ?, lease_token = ?, lease_expires_at = ?, "
            f"updated_at = ? WHERE job_id = ? AND {_UNFINISHED} "
            f"AND (lease_expires_at IS NULL OR lease_expires_at <= ?) RETURNING {_BULK.columns}",
            (owner, token, until, now, job_id, now),
        )
        return None if row is None else _BULK.load(row)

    def save_bulk_operation(self, record: BulkRecord, token: str) -> bool:
        settable = [
            n for n in _BULK.names if n not in ("job_id", "kind", "selection", "created_at")
        ]
        values = dict(zip(_BULK.names, _BULK.params(record), strict=True))
        return (
            self._changed(
                f"UPDATE bulk_operations SET {', '.join(f'{n} = ?' for n in settable)} "
                "WHERE job_id = ? AND lease_token = ?",
                [*(values[n] for n in settable), record.job_id, token],
            )
            == 1
        )

    def release_bulk_operation(self, job_id: str, token: str) -> bool:
        return (
            self._changed(
                "UPDATE bulk_operations SET lease_owner = NULL, lease_token = NULL, "
                "lease_expires_at = NULL WHERE job_id = ? AND lease_token = ?",
                (job_id, token),
            )
            == 1
        )


def _finish(
    run_id: str,
    status: RunStatus,
    now: int,
    output: Any,
    error: dict[str, Any] | None,
    cancel_reason: str | None,
    started_at: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The statement ending a run that has not ended, and its parameters (``started_at``: the
    run also starts in it, for a run that ends in its first invocation)."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"finish_run needs a final status, not {status!r}")
    params: tuple[Any, ...] = (status, now, _dumps(output), _dumps(error), cancel_reason)
    started = ""
    if started_at is not None:
        started, params = ", started_at = COALESCE(started_at, ?)", (*params, started_at)
    return (
        "UPDATE runs SET status = ?, ended_at = ?, output = ?, error = ?, "
        f"cancel_reason = ?, singleton_key = NULL{started} "
        f"WHERE run_id = ? AND status NOT IN {_FINAL}",
        (*params, run_id),
    )


_MEMO_ROWS = 32
"""Memo rows per statement at most: a statement text per count up to it, few in practice (a
unit carries the checkpoints of the steps one invocation took since its last commit)."""


def _memo_insert(rows: int) -> str:
    """The memo upsert of ``rows`` rows; each row's seq is the run's highest plus a parameter.

    First write wins, except over a row that only holds the input a step must run with.
    """
    row = (
        "(?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + ? FROM memo WHERE run_id = ?), ?, ?, ?, ?)"
    )
    return (
        f"INSERT INTO memo ({_MEMO.columns}) VALUES {', '.join([row] * rows)} "
        "ON CONFLICT (run_id, step_key) DO UPDATE SET step_id = excluded.step_id, "
        "kind = excluded.kind, value = excluded.value, seq = excluded.seq, "
        "created_at = excluded.created_at, started_at = excluded.started_at, "
        "attempts = excluded.attempts, input = excluded.input "
        f"WHERE memo.kind = '{INPUT_KIND}'"
    )


def _memo_args(m: MemoRecord) -> tuple[str, str, str, str, Any, int, int | None, int, Any]:
    """A record as :meth:`SqlTx.put_memo`'s arguments."""
    return (
        m.run_id,
        m.step_key,
        m.step_id,
        m.kind,
        m.value,
        m.created_at,
        m.started_at,
        m.attempts,
        m.input,
    )


_CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row statement, largest first: few distinct statement texts, which each
backend caches (SQLite's statement cache, PostgreSQL's prepared statements)."""


def _chunked(items: Sequence[R]) -> Iterator[Sequence[R]]:
    """``items`` in order, in runs whose lengths are in :data:`_CHUNKS`."""
    start = 0
    for size in _CHUNKS:
        while len(items) - start >= size:
            yield items[start : start + size]
            start += size


def _padded(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """``values`` in runs of at most 256 for an ``IN (...)`` list, each padded with its last
    value to a power of two (a padded value costs the database a little; a new text, a parse)."""
    top = _CHUNKS[0]
    for start in range(0, len(values), top):
        chunk = list(values[start : start + top])
        size = 1 << (len(chunk) - 1).bit_length()
        yield chunk + [chunk[-1]] * (size - len(chunk))


def _where(*clauses: tuple[str, Any]) -> tuple[str, list[Any]]:
    """AND the clauses whose value is not None; ``1 = 1`` when none is."""
    used = [(sql, value) for sql, value in clauses if value is not None]
    return " AND ".join(["1 = 1", *(sql for sql, _ in used)]), [v for _, v in used]


# -- bulk operations -----------------------------------------------------------------------------

_BULK = _Shape(BulkRecord, ("selection", "errors"), tuples=("errors",))
_UNFINISHED = "state IN ('selecting', 'running')"

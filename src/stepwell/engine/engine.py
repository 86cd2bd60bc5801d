"""The engine: ingest, dispatch, timers and cron around one store.

Loops are small and each has a one-iteration form that takes ``now`` (:meth:`Engine.tick`), so
tests drive time with a fake clock. Dispatch claims due queue items under a lease, invokes the
run's handler through its app's driver and commits the outcome; leases of in-flight items are
renewed, and an item whose node died is taken over when its lease expires.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import orjson

from stepwell.clock import Clock, SystemClock
from stepwell.engine import flow, wakeups
from stepwell.engine.bulk import BulkOperations
from stepwell.engine.checkpoint import (
    RunCheckpointer,
    RunStarted,
    StepRecordedElsewhere,
    take_start,
)
from stepwell.engine.cron import CronSpec
from stepwell.engine.drivers.base import Driver, FunctionUnavailable
from stepwell.engine.drivers.inprocess import InProcessDriver
from stepwell.engine.ingest import Router, validate_events
from stepwell.engine.local_lease import LeasingTx
from stepwell.engine.observers import ObservedStore, RunEndings
from stepwell.engine.registry import FunctionSpec, Registry, parse_function
from stepwell.engine.transitions import Transitions, new_cron_run
from stepwell.errors import ConfigError, NotFound
from stepwell.ids import new_id
from stepwell.protocol.invocation import Handler
from stepwell.protocol.ops import CallRequest, CallResult, StepError
from stepwell.store.base import Store, Tx
from stepwell.store.records import (
    FINAL_STATUSES,
    INPUT_KIND,
    AppRecord,
    EventRecord,
    FunctionRecord,
    MemoRecord,
    QueueItem,
    RunRecord,
)

log = logging.getLogger("stepwell.engine")
T = TypeVar("T")

TIMER_KINDS = frozenset(
    {
        "sleep",
        "wait_timeout",
        "invoke_timeout",
        "debounce",
        "batch",
        "start_timeout",
        "finish_timeout",
    }
)
ENDING_TIMER_KINDS = frozenset({"start_timeout", "finish_timeout"})
FIRED_IN_CLAIM = frozenset({"sleep", "wait_timeout", "invoke_timeout"})
"""Timers the claiming unit fires itself: each continues its run, leased in the same unit."""
UNAVAILABLE_DELAY_MS = 30_000
BLOCKED_CHECK_ROUNDS = 6
"""Lease-loop rounds between looks for blocked items when no loaded function limits claims."""
ENGINE_ERROR_DELAY_MS = 5_000
FRESH_RUNS_KEPT = 10_000
"""At most this many new runs' events are kept for the claims that start them."""


class Engine:
    """Runs functions durably on a store.

    Args:
        store: where everything lives.
        clock: the time source (a :class:`~stepwell.clock.FakeClock` in tests).
        concurrency: how many invocations this node runs at once.
        lease_ms: how long a claimed item stays leased without renewal.
        node_id: this node's lease owner id; default: a new ULID.
        rng: randomness for backoff jitter.
        http: the driver for apps served over HTTP (synced through ``/fn/register``).
        retry_interval_ms: a fixed delay between attempts instead of the exponential schedule.

    Attributes:
        store: ``store`` as an :class:`~.observers.ObservedStore`; every unit goes through it.
        run_listeners: called with ``(run, status)`` once a unit of work of this node that
            ended a run has committed, whatever ended it (see :mod:`.observers`).
        invocation_listeners: called with ``(spec, result)`` when a driver returned the result
            of an invocation, before its outcome is committed.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        concurrency: int = 64,
        lease_ms: int = 30_000,
        node_id: str | None = None,
        rng: random.Random | None = None,
        http: Driver | None = None,
        retry_interval_ms: int | None = None,
    ) -> None:
        self.store = ObservedStore(store)
        self.clock: Clock = clock or SystemClock()
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.node_id = node_id or new_id()
        self.registry = Registry()
        self.router = Router(self.registry)
        self.transitions = Transitions(self.router, rng, retry_interval_ms)
        self.transitions.apps_stale = self._apps_stale
        self.drivers: dict[str, Driver] = {}
        self.http = http
        self.apps: dict[str, AppRecord] = {}
        self._inflight: dict[str, tuple[QueueItem, asyncio.Task[None]]] = {}
        self._cron_next: dict[tuple[str, int], int] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._running = False
        self._claim_was_full = False
        # Timers whose firing in a claiming unit failed: fired in a unit of their own instead.
        self._apart: set[str] = set()
        endings = RunEndings()
        self.run_listeners = endings.listeners
        self.store.observers.append(endings)
        self.invocation_listeners: list[Callable[[FunctionSpec, CallResult], None]] = []
        # Where nodes share the store, each checks it routes with the apps the store has.
        self._shared = wakeups.notifier_of(store) is not None
        self._apps_version: tuple[int, int, int] | None = None
        # Events of runs this node's units created, by run id, until a claim starts them.
        self._fresh: dict[str, list[EventRecord]] = {}
        # What checkpointers write through: the runs a step's sent events start are dispatched
        # directly too.
        self._dispatching = cast(Store, _DispatchingStore(self))
        self.bulk = BulkOperations(self)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, loops: bool = True, take_over: bool = False) -> None:
        """Open the store and start the loops.

        Args:
            loops: start the dispatch and lease loops (tests may drive :meth:`tick` instead).
            take_over: drop every lease at once (a single-node engine that holds the store
                exclusively: what an earlier, killed process held is ours to run now).
        """
        await self.store.open()
        if take_over:
            await self.store.run(lambda tx: tx.release_all(None))
        await self._load_served_apps()
        self._running = True
        if loops:
            self._loops = [
                asyncio.create_task(self._dispatch_loop(), name="stepwell-dispatch"),
                asyncio.create_task(self._lease_loop(), name="stepwell-leases"),
            ]
            await self.bulk.resume(take_over=take_over)  # bulk operations a restart stopped

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop claiming, let in-flight invocations finish (up to ``grace_s``), hand leases back."""
        self._running = False
        self._wake.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        await self.bulk.stop()
        tasks = [task for _, task in self._inflight.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        owner = self.node_id
        await self.store.run(lambda tx: tx.release_all(owner))
        await self.store.close()
        close = getattr(self.http, "close", None)
        if close is not None:
            await close()

    # -- apps and functions ----------------------------------------------------------------------

    async def _load_served_apps(self) -> None:
        """Apps served over HTTP keep running across restarts without a new sync, and a node
        sharing its store learns the apps other nodes synced and the functions they paused."""
        served = self.http is not None

        def load(
            tx: Tx,
        ) -> tuple[tuple[int, int, int], list[tuple[AppRecord, list[FunctionRecord]]], list[str]]:
            apps = (
                [(a, tx.list_functions(a.app_id)) for a in tx.list_apps() if _served(a)]
                if served
                else []
            )
            return tx.apps_version(), apps, tx.paused_functions()

        now = self.clock.now_ms()
        version, loaded, paused = await self.store.read(load)
        self.registry.paused = frozenset(paused)
        for app, functions in loaded:
            known = self.apps.get(app.app_id)
            if known is not None and known.checksum == app.checksum:
                continue
            specs = []
            for record in functions:
                try:
                    specs.append(parse_function(app.app_id, record.config, version=record.version))
                except ConfigError as exc:
                    log.warning("function %s no longer valid: %s", record.function_id, exc)
            self.apps[app.app_id] = app
            self.registry.replace_app(app.app_id, specs)
            assert self.http is not None
            self.drivers[app.app_id] = self.http
            self._schedule_crons(specs, now)
        self._apps_version = version

    def _apps_current(self, tx: Tx) -> None:
        """Inside a unit that routes events: raise :class:`_StaleApps` when another node synced
        an app since this node loaded its apps (only where nodes share the store)."""
        if self._apps_stale(tx):
            raise _StaleApps

    def _apps_stale(self, tx: Tx) -> bool:
        return self._shared and tx.apps_version() != self._apps_version

    async def register(
        self, request: Mapping[str, Any], handlers: Mapping[str, Handler] | None = None
    ) -> list[FunctionSpec]:
        """Sync an app; see :meth:`sync_app`. Returns its functions."""
        specs, _ = await self.sync_app(request, handlers)
        return specs

    async def sync_app(
        self, request: Mapping[str, Any], handlers: Mapping[str, Handler] | None = None
    ) -> tuple[list[FunctionSpec], bool]:
        """Sync an app from its registration body (Inngest's ``RegisterRequest`` shape).

        ``handlers`` maps composite function ids to in-process handlers; without them the app
        is served over HTTP. Raises :class:`ConfigError` naming the function and field; nothing
        is stored then.
        """
        if handlers is None and self.http is None:
            raise ConfigError("this engine has no HTTP driver to call a served app with")
        app_id = _app_id(request)
        raw_functions = request.get("functions") or []
        if not isinstance(raw_functions, list):
            raise ConfigError(f"app {app_id!r}: field 'functions' must be a list")
        specs = [parse_function(app_id, f) for f in raw_functions if isinstance(f, Mapping)]
        ids = [s.function_id for s in specs]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"app {app_id!r}: function ids must be unique")
        now = self.clock.now_ms()
        checksum = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()
        app = AppRecord(
            app_id=app_id,
            url=str(request.get("url") or ""),
            sdk=request.get("sdk"),
            framework=request.get("framework"),
            checksum=checksum,
            synced_at=now,
        )

        def sync(tx: Tx) -> list[int]:
            tx.upsert_app(app)
            tx.delete_functions_except(app_id, ids)
            versions = []
            for spec in specs:
                raw = orjson.dumps(spec.config, option=orjson.OPT_SORT_KEYS)
                record = tx.upsert_function(
                    spec.function_id,
                    app_id,
                    dict(spec.config),
                    hashlib.sha256(raw).hexdigest(),
                    now,
                )
                versions.append(record.version)
            return versions

        versions = await self.store.run(sync)
        specs = [_with_version(s, v) for s, v in zip(specs, versions, strict=True)]
        self.registry.replace_app(app_id, specs)
        if handlers is not None:
            self.drivers[app_id] = InProcessDriver(handlers)
        elif self.http is not None:
            self.drivers[app_id] = self.http
        previous = self.apps.get(app_id)
        modified = previous is None or previous.checksum != checksum
        self.apps[app_id] = app
        self._schedule_crons(specs, now)
        self._wake.set()
        return specs, modified

    def _schedule_crons(self, specs: Sequence[FunctionSpec], now: int) -> None:
        ids = {s.function_id for s in specs}
        self._cron_next = {k: v for k, v in self._cron_next.items() if k[0] not in ids}
        for spec in specs:
            for i, cron in enumerate(spec.crons):
                self._cron_next[(spec.function_id, i)] = cron.next_after(now)

    # -- events and runs -------------------------------------------------------------------------

    async def send_wire(self, events: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[str]:
        """Accept events (wire shape); returns their ids once committed. Raises
        :class:`~stepwell.errors.EventError` for invalid input, storing nothing."""
        now = self.clock.now_ms()
        incoming = validate_events(events, now=now)

        return await self._run_routing(lambda tx: self.router.ingest(tx, incoming, now), now)

    async def _run_routing(self, work: Callable[[Tx], T], now: int) -> T:
        """:meth:`_run_leasing` for a unit that routes events (its own, or a run's end events):
        where nodes share the store, the unit first checks that this node has loaded the apps
        the store has, and if not, the node reloads them and runs the unit again."""
        if self._shared:

            def checked(tx: Tx) -> T:
                self._apps_current(tx)
                return work(tx)

            for _ in range(3):
                try:
                    return await self._run_leasing(checked, now)
                except _StaleApps:
                    await self._load_served_apps()  # route with the functions the store has
        return await self._run_leasing(work, now)

    async def _run_leasing(self, work: Callable[[Tx], T], now: int) -> T:
        """Run a unit; start at once the invocation items it enqueued for now (direct dispatch),
        keep the events of the runs it created for the claims that will start them, and wake
        the dispatch loop only if the unit may have made other work (``LeasingTx.made_work``)."""
        if not self._running:
            return await self.store.run(work)  # no dispatch loop to wake: tick() claims
        capacity = max(self.concurrency - len(self._inflight), 0)
        owner, lease = self.node_id, self.lease_ms
        limited = self._claim_limited

        def unit(tx: Tx) -> tuple[T, list[_Started], dict[str, list[EventRecord]], bool]:
            leasing = LeasingTx(
                tx, owner=owner, now=now, lease_ms=lease, capacity=capacity, limited=limited
            )
            result = work(leasing.as_tx())
            if not leasing.leased:
                return result, [], leasing.fresh_runs(), leasing.made_work
            # Load what the invocations need here, in the writer, instead of a read later.
            created = leasing.created_runs()
            leased = self._snapshots(tx, leasing.leased, created)  # takes the leased runs
            return result, leased, created, leasing.made_work

        result, leased, fresh, made_work = await self.store.run(unit)
        if fresh and len(self._fresh) < FRESH_RUNS_KEPT:
            self._fresh.update(fresh)
        for item, snapshot in leased:
            self._start(item, snapshot)
        if made_work:
            self._wake.set()
        return result

    def _maybe_limited(self, function_id: str) -> bool:
        """Whether a claim must read the run's flow keys: the function has claim-time limits,
        or this node does not know it (its runs carry their keys anyway)."""
        spec = self.registry.get(function_id)
        return spec is None or spec.flow.limits_claims

    def _claim_limited(self, function_id: str) -> bool:
        """Whether a function's invocations must go through a flow-control claim."""
        spec = self.registry.get(function_id)
        return spec is not None and spec.flow.limits_claims

    async def pause(self, function_id: str, paused: bool = True) -> bool:
        """Pause a function (its triggers start no run; matching events are recorded as skipped
        and can be replayed later), or resume it with ``paused=False``. Runs already started go
        on. Returns whether anything changed; raises NotFound for an unknown function."""
        if self.registry.get(function_id) is None:
            raise NotFound(f"function {function_id!r} not found")
        now = self.clock.now_ms()
        changed = await self.store.run(lambda tx: tx.set_paused(function_id, paused, now))
        current = set(self.registry.paused)
        (current.add if paused else current.discard)(function_id)
        self.registry.paused = frozenset(current)
        return changed

    async def cancel(self, run_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a run; False if it had already ended. Raises NotFound for an unknown run."""
        now = self.clock.now_ms()

        def cancel(tx: Tx) -> bool | None:
            if tx.get_run(run_id) is None:
                return None
            return self.transitions.cancel(tx, run_id, now, reason)

        done = await self._run_routing(cancel, now)
        if done is None:
            raise NotFound(f"run {run_id!r} not found")
        self._wake.set()
        return done

    # -- dispatch --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Make the dispatch loop look for due work now (after writing to the store directly)."""
        self._wake.set()

    async def tick(self, now: int | None = None) -> int:
        """One dispatch iteration: fire due cron ticks, claim due items and start them.

        Returns how many items were claimed.
        """
        claimed, _ = await self._tick(now)
        return claimed

    async def _tick(self, now: int | None = None) -> tuple[int, int | bool | None]:
        """:meth:`tick`, also returning when the earliest unleased item falls due, as the
        claiming unit saw it (None: none queued), or False when the unit did not look."""
        now = self.clock.now_ms() if now is None else now
        await self._fire_crons(now)
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return 0, False
        claim = functools.partial(self._claim, now=now, limit=free)
        claimed, next_at, count, made_work = await self.store.run(claim)
        self._claim_was_full = count == free
        for item, snapshot in claimed:
            self._start(item, snapshot)
        if made_work:
            self._wake.set()
        return count, next_at

    def _claim(
        self, tx: Tx, *, now: int, limit: int
    ) -> tuple[list[_Started], int | bool | None, int, bool]:
        """Lease up to ``limit`` due items to this node, each invocation item with its run's
        snapshot, read in the claiming unit rather than by a read of its own later; and, when
        fewer than ``limit`` were due, when the next unleased item falls due (in the same unit,
        so the dispatch loop needs no read of its own before it sleeps).

        Timers of :data:`FIRED_IN_CLAIM` are fired here, in the claiming unit: a sleep that
        ended continues its run, and the continuation is leased in its place, so a woken run
        is invoked after one commit instead of two. Also returns how many items were leased
        (fired timers included), and whether firing made work left for a claim
        (``LeasingTx.made_work``)."""
        owner, lease = self.node_id, self.lease_ms
        if self.registry.limits_claims:
            items = flow.claim(tx, now, owner, lease, limit, self._maybe_limited)
        else:
            items = tx.claim(now, owner, lease, limit)
        next_at = tx.next_available_at() if len(items) < limit else False
        count = len(items)
        timers = [i for i in items if i.kind in FIRED_IN_CLAIM and i.item_id not in self._apart]
        if not timers:
            return self._snapshots(tx, items, self._fresh), next_at, count, False
        # Each timer's slot goes to the run it continues.
        leasing = LeasingTx(
            tx,
            owner=owner,
            now=now,
            lease_ms=lease,
            capacity=len(timers),
            limited=self._claim_limited,
        )
        for item in timers:
            try:
                self.transitions.fire_timer(leasing.as_tx(), item=item, owner=owner, now=now)
            except Exception:
                # The whole claim fails (the unit may have written part of this timer); the
                # next claim leaves this timer to its own unit, which retries it alone.
                self._apart.add(item.item_id)
                raise
        fired = {i.item_id for i in timers}
        items = [i for i in items if i.item_id not in fired] + leasing.leased
        return self._snapshots(tx, items, self._fresh), next_at, count, leasing.made_work

    @staticmethod
    def _snapshots(
        tx: Tx, items: list[QueueItem], created: dict[str, list[EventRecord]]
    ) -> list[_Started]:
        """What invoking the runs of leased items needs (None for a timer). A run this node
        created (``created``: its events, taken from there) is read back whole only if
        something happened to it since: its first invocation finds it queued, never started,
        so with no memo yet; the runs of all such items are read in one query."""
        fresh = {
            i.run_id: events
            for i in items
            if i.kind not in TIMER_KINDS
            and (events := created.pop(i.run_id, None)) is not None
            and i.kind == "start"
        }
        runs = {r.run_id: r for r in tx.get_runs(list(fresh))} if fresh else {}
        started: list[_Started] = []
        for item in items:
            run = runs.get(item.run_id)
            if item.kind in TIMER_KINDS:
                started.append((item, None))
            elif run is not None and run.status == "Queued" and run.started_at is None:
                started.append((item, (run, [], [e.to_wire() for e in fresh[item.run_id]])))
            else:
                started.append((item, _load_run(tx, item.run_id)))
        return started

    def _start(self, item: QueueItem, snapshot: _Snapshot | None = None) -> None:
        task = asyncio.create_task(self._process(item, snapshot))
        self._inflight[item.item_id] = (item, task)
        task.add_done_callback(functools.partial(self._done, item.item_id))

    def _done(self, item_id: str, _task: asyncio.Task[None]) -> None:
        # What the invocation wrote woke the loop if it made work; its end alone matters only
        # when the loop left work queued for want of a free slot.
        full = len(self._inflight) >= self.concurrency or self._claim_was_full
        self._inflight.pop(item_id, None)
        if full:
            self._wake.set()

    async def _fire_crons(self, now: int) -> None:
        due = [(key, at) for key, at in self._cron_next.items() if at <= now]
        for (function_id, index), tick_at in due:
            spec = self.registry.get(function_id)
            if spec is None or index >= len(spec.crons):
                self._cron_next.pop((function_id, index), None)
                continue
            if function_id in self.registry.paused:  # a paused function's ticks are skipped
                self._cron_next[(function_id, index)] = spec.crons[index].next_after(now)
                continue
            cron: CronSpec = spec.crons[index]
            await self.store.run(functools.partial(_cron_unit, spec, cron.source, tick_at, now))
            self._cron_next[(function_id, index)] = cron.next_after(max(tick_at, now))

    async def _dispatch_loop(self) -> None:
        # Other nodes' new work sets _wake too, so an idle node sleeps instead of polling.
        listening = await wakeups.listen(self.store.backend, self._wake)
        try:
            while self._running:
                self._wake.clear()
                try:
                    _, queued = await self._tick()
                except Exception:
                    log.exception("dispatch iteration failed; retrying")
                    await asyncio.sleep(1)
                    continue
                if self._claim_was_full and len(self._inflight) < self.concurrency:
                    continue  # more may be due right now
                next_at = await self._next_due(queued)
                await self.clock.sleep_until(next_at, self._wake)
        finally:
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)

    async def _next_due(self, queued: int | bool | None = False) -> int:
        """When the dispatch loop should look again; ``queued`` is the earliest unleased item's
        due time as the claim just saw it (None: nothing queued), or False to read it now."""
        now = self.clock.now_ms()
        if len(self._inflight) >= self.concurrency:
            return now + wakeups.IDLE_POLL_MS  # woken when an invocation finishes
        if queued is False:
            queued = await self.store.read(lambda tx: tx.next_available_at())
        idle = wakeups.idle_poll_ms(self.store.backend, self.lease_ms)
        candidates = [now + idle, *self._cron_next.values()]
        if queued is not None:
            candidates.append(queued)
        return min(candidates)

    async def _lease_loop(self) -> None:
        rounds = 0
        while self._running:
            await asyncio.sleep(self.lease_ms / 3000)
            rounds += 1
            try:
                await self.lease_round(rounds)
            except Exception:
                log.exception("lease renewal failed")

    async def lease_round(self, rounds: int) -> None:
        """One round of the lease loop (it runs one every third of a lease; ``rounds`` counts
        them from 1): renew this node's leases, then the rarer chores."""
        await self.renew_leases()
        await self.bulk.resume_due()  # a query every few seconds, not every round
        if rounds % 3 == 0 and self.registry.limits_claims:
            await self.sweep_blocked()
        elif rounds % BLOCKED_CHECK_ROUNDS == 0 and await self._any_blocked():
            # No loaded function limits claims, yet items are blocked: a re-sync lifted their
            # limit (or another node's functions hold them). One read of the blocked index.
            await self.sweep_blocked()
        if rounds % 30 == 0:
            await self.forget_expired_buckets()

    async def forget_expired_buckets(self) -> int:
        """Delete throttle and rate-limit state that no longer limits anything."""
        now = self.clock.now_ms()
        return await self.store.run(lambda tx: tx.delete_expired_buckets(now))

    async def _any_blocked(self) -> bool:
        return bool(await self.store.read(lambda tx: tx.blocked_keys(1)))

    async def sweep_blocked(self) -> int:
        """Unblock work whose concurrency key has nothing executing, or whose function this
        node knows no longer has a limit of its own (see :func:`.flow.sweep_blocked`)."""
        now = self.clock.now_ms()
        lifted = self._limit_lifted
        freed = await self.store.run(lambda tx: flow.sweep_blocked(tx, now, lifted))
        if freed:
            self._wake.set()
        return freed

    def _limit_lifted(self, key: str) -> bool:
        """Whether a concurrency key is scoped to a loaded function that now has no claim-time
        limit: its items are claimed without flow control, so none of them need wait. (Its
        runs keep the keys they were created with; a function still limited would block them
        on those again.)"""
        function_id = flow.function_of_key(key)
        spec = self.registry.get(function_id) if function_id is not None else None
        return spec is not None and not spec.flow.limits_claims

    async def renew_leases(self) -> int:
        """Extend the leases of every item in flight on this node; returns how many."""
        ids = list(self._inflight)
        if not ids:
            return 0
        owner, until = self.node_id, self.clock.now_ms() + self.lease_ms
        return await self.store.run(lambda tx: tx.renew_leases(owner, ids, until))

    async def _process(self, item: QueueItem, snapshot: _Snapshot | None = None) -> None:
        owner = self.node_id
        try:
            if item.kind in TIMER_KINDS:
                now = self.clock.now_ms()
                fire = functools.partial(
                    self.transitions.fire_timer, item=item, owner=owner, now=now
                )
                # Through direct dispatch, like every unit of an item: the run it continues
                # starts at once, and the loop is woken only if other work was made.
                if item.kind in ENDING_TIMER_KINDS:  # it may cancel the run
                    await self._run_routing(fire, now)
                else:
                    await self._run_leasing(fire, now)
                self._apart.discard(item.item_id)
            else:
                await self._invoke(item, snapshot)
        except asyncio.CancelledError:
            raise
        except StepRecordedElsewhere as exc:
            # Expected after a takeover: nothing of this invocation was committed; replay now.
            log.warning("%s", exc)
            now = self.clock.now_ms()
            await self.store.run(lambda tx: tx.release(item.item_id, owner, now))
            self._wake.set()
        except Exception:
            log.exception("processing %s failed; it will be retried", item.item_id)
            retry_at = self.clock.now_ms() + ENGINE_ERROR_DELAY_MS
            await self.store.run(lambda tx: tx.release(item.item_id, owner, retry_at))
            self._wake.set()

    async def _invoke(self, item: QueueItem, snapshot: _Snapshot | None) -> None:
        owner = self.node_id
        if snapshot is None:
            snapshot = await self.store.read(lambda tx: _load_run(tx, item.run_id))
        run, memo, events = snapshot
        if run is None or run.status in FINAL_STATUSES:
            await self.store.run(lambda tx: tx.ack(item.item_id, owner, item.generation))
            self._wake.set()  # an item that changed since it was leased stays, unleased
            return
        spec = self.registry.get(run.function_id)
        if spec is None and self._shared:
            await self._load_served_apps()  # synced on another node since this one started
            spec = self.registry.get(run.function_id)
        driver = self.drivers.get(spec.app_id) if spec is not None else None
        if spec is None or driver is None:
            log.warning(
                "run %s: function %s is not loaded; retrying later", run.run_id, run.function_id
            )
            later = self.clock.now_ms() + UNAVAILABLE_DELAY_MS
            await self.store.run(lambda tx: tx.release(item.item_id, owner, later))
            self._wake.set()
            return
        now = self.clock.now_ms()
        checkpointer = RunCheckpointer(self._dispatching, self.router, self.clock, run.run_id)
        if run.status == "Queued":
            checkpointer.defer(RunStarted(run.run_id, run.attempt, now))
        request = CallRequest(
            function_id=run.function_id,
            run_id=run.run_id,
            attempt=run.attempt,
            max_attempts=spec.max_attempts,
            event=events[0] if events else {},
            events=events,
            memo={m.step_key: m.value for m in memo},
            stack=[m.step_key for m in memo if m.kind != INPUT_KIND],
            memo_kinds={m.step_key: m.kind for m in memo},
            memo_ids={m.step_key: m.step_id for m in memo},
            now_ms=now,
        )
        try:
            result = await driver.invoke(spec, request, checkpointer)
        except FunctionUnavailable as exc:
            log.warning("run %s: %s; retrying later", run.run_id, exc)
            await checkpointer.flush()
            later = self.clock.now_ms() + UNAVAILABLE_DELAY_MS
            await self.store.run(lambda tx: tx.release(item.item_id, owner, later))
            self._wake.set()
            return
        for listener in self.invocation_listeners:
            listener(spec, result)
        checkpoints = await checkpointer.take()
        started = take_start(checkpoints)  # apply folds it into the run's end when it ends
        done_at = self.clock.now_ms()

        steps_done = checkpointer.steps

        def commit(tx: Tx) -> None:
            for work in checkpoints:
                work(tx)
            if steps_done and run.attempt:
                # Attempts are counted per step: what fails after a step completed is a first try.
                tx.set_run_attempt(run.run_id, 0)
            return self.transitions.apply(
                tx, run, spec, item, owner, result, done_at, events, started
            )

        if result.done or any(isinstance(op, StepError) for op in result.ops):
            # The run may end: its end events are routed with the apps the store has.
            await self._run_routing(commit, done_at)
        else:
            await self._run_leasing(commit, done_at)

    # -- tests and tools -------------------------------------------------------------------------

    async def run_until_idle(self, *, max_iterations: int = 10_000) -> None:
        """Dispatch until nothing is due now and nothing is in flight (for tests and scripts)."""
        for _ in range(max_iterations):
            claimed = await self.tick()
            if self._inflight:
                await asyncio.wait(
                    [t for _, t in self._inflight.values()], return_when=asyncio.FIRST_COMPLETED
                )
                continue
            if claimed == 0:
                return
        raise RuntimeError("the engine did not become idle")

    async def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`NotFound`."""
        run = await self.store.read(lambda tx: tx.get_run(run_id))
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run


class _DispatchingStore:
    """The engine's store, whose units run with direct dispatch (:meth:`Engine._run_leasing`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def run(self, work: Callable[[Tx], T]) -> T:
        return await self._engine._run_leasing(work, self._engine.clock.now_ms())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine.store, name)


class _StaleApps(Exception):
    """Another node synced an app this node has not loaded: reload, then route again."""


def _cron_unit(spec: FunctionSpec, source: str, tick_at: int, now: int, tx: Tx) -> object:
    return new_cron_run(tx, spec, source, tick_at, now)


_Snapshot = tuple[RunRecord | None, list[MemoRecord], list[dict[str, Any]]]


_Started = tuple[QueueItem, _Snapshot | None]
"""A queue item leased to this node, with its run's snapshot when it invokes the run."""


def _load_run(tx: Tx, run_id: str) -> _Snapshot:
    run = tx.get_run(run_id)
    if run is None:
        return None, [], []
    memo = tx.get_memo(run_id)
    events = [e.to_wire() for e in tx.get_events(list(run.event_ids))]
    return run, memo, events


def _served(app: AppRecord) -> bool:
    return bool(app.url) and not str(app.url).startswith("inprocess://")


def _app_id(request: Mapping[str, Any]) -> str:
    # The Python SDK spells it "appname"; Go decodes JSON keys case-insensitively, so do we.
    for key, value in request.items():
        if key.lower() == "appname" and isinstance(value, str) and value:
            return value
    raise ConfigError("registration is missing 'appName'")


def _with_version(spec: FunctionSpec, version: int) -> FunctionSpec:
    from dataclasses import replace

    return replace(spec, version=version)

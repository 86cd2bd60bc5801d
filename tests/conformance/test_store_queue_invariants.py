"""Property: whatever interleaving of queue verbs, no item enqueued and not acked is ever lost.

The store is driven by random sequences of enqueue / claim / ack / release / release_all / time
passing, next to a small model of the queue. After every step the store must agree with the
model on what exists, what is due, and what a claim may return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwell.store.base import Store
from stepwell.store.records import QueueItem

IDS = ("a", "b", "c", "d")
OWNERS = ("n1", "n2")
LEASE = 50


@dataclass
class Model:
    available_at: int
    priority: int
    generation: int = 0
    owner: str | None = None
    expires_at: int = 0

    def claimable(self, now: int) -> bool:
        return self.available_at <= now and (self.owner is None or self.expires_at <= now)


ops = st.one_of(
    st.tuples(
        st.just("enqueue"),
        st.sampled_from(IDS),
        st.integers(0, 200),
        st.integers(-1, 1),
    ),
    st.tuples(st.just("claim"), st.sampled_from(OWNERS), st.integers(0, 4)),
    st.tuples(st.just("ack"), st.sampled_from(IDS), st.sampled_from(OWNERS), st.booleans()),
    st.tuples(
        st.just("release"), st.sampled_from(IDS), st.sampled_from(OWNERS), st.integers(0, 200)
    ),
    st.tuples(st.just("release_all"), st.sampled_from((*OWNERS, None))),
    st.tuples(st.just("wait"), st.integers(1, 80)),
)


class Scenario:
    """Applies one op to the store and to the model, checking the store's answer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.model: dict[str, Model] = {}
        self.seen: dict[tuple[str, str], int] = {}  # (owner, id) -> generation it claimed
        self.now = 0

    async def apply(self, op: tuple[Any, ...]) -> None:
        await getattr(self, op[0])(*op[1:])
        await self.check()

    async def enqueue(self, item_id: str, available_at: int, priority: int) -> None:
        at = self.now + available_at
        new = await self.store.run(
            lambda tx: tx.enqueue(QueueItem(item_id, "continue", "r", "f", at, priority))
        )
        assert new is (item_id not in self.model)
        if new:
            self.model[item_id] = Model(at, priority)
        else:
            m = self.model[item_id]
            m.generation += 1
            m.available_at = min(m.available_at, at)

    async def claim(self, owner: str, limit: int) -> None:
        now = self.now
        got = await self.store.run(lambda tx: tx.claim(now, owner, LEASE, limit))
        claimable = {i for i, m in self.model.items() if m.claimable(now)}
        ids = [g.item_id for g in got]
        assert len(ids) == len(set(ids)) == min(limit, len(claimable))
        assert set(ids) <= claimable
        key = {i: (m.priority, m.available_at) for i, m in self.model.items()}
        if ids:  # nothing left behind ranks before what was taken
            assert max(key[i] for i in ids) <= min(
                (key[i] for i in claimable - set(ids)), default=(99, 10**9)
            )
        for g in got:
            m = self.model[g.item_id]
            assert (g.generation, g.available_at) == (m.generation, m.available_at)
            m.owner, m.expires_at = owner, now + LEASE
            self.seen[owner, g.item_id] = g.generation

    async def ack(self, item_id: str, owner: str, stale: bool) -> None:
        generation = self.seen.get((owner, item_id), 0) - (1 if stale else 0)
        deleted = await self.store.run(lambda tx: tx.ack(item_id, owner, generation))
        m = self.model.get(item_id)
        held = m is not None and m.owner == owner
        assert deleted is (held and m is not None and m.generation == generation)
        if deleted:
            del self.model[item_id]
        elif held and m is not None:
            m.owner = None

    async def release(self, item_id: str, owner: str, later: int) -> None:
        at = self.now + later
        released = await self.store.run(lambda tx: tx.release(item_id, owner, at))
        m = self.model.get(item_id)
        assert released is (m is not None and m.owner == owner)
        if released and m is not None:
            m.owner, m.available_at = None, at

    async def release_all(self, owner: str | None) -> None:
        count = await self.store.run(lambda tx: tx.release_all(owner))
        held = [m for m in self.model.values() if m.owner and owner in (None, m.owner)]
        assert count == len(held)
        for m in held:
            m.owner = None

    async def wait(self, ms: int) -> None:
        self.now += ms

    async def check(self) -> None:
        depth, next_at = await self.store.read(
            lambda tx: (tx.queue_depth(), tx.next_available_at())
        )
        assert depth == len(self.model)
        unleased = [m.available_at for m in self.model.values() if m.owner is None]
        assert next_at == min(unleased, default=None)

    async def drain(self) -> set[str]:
        """Everything still in the store, once every lease is dropped."""
        await self.store.run(lambda tx: tx.release_all(None))
        items = await self.store.run(lambda tx: tx.claim(10**12, "drain", LEASE, 100))
        return {i.item_id for i in items}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(ops, max_size=25))
def test_queue_never_loses_an_unacked_item(
    make_store: Callable[[], Store], steps: list[tuple[Any, ...]]
) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        try:
            # One database serves every example: start from an empty queue.
            await store.run(lambda tx: [tx.delete_queue_item(i) for i in IDS])
            s = Scenario(store)
            for op in steps:
                await s.apply(op)
            assert await s.drain() == set(s.model)
        finally:
            await store.close()

    asyncio.run(scenario())

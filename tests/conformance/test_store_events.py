"""Events: immutable rows, lookups in order, newest-first listing, dedupe keys with a TTL."""

from __future__ import annotations

from typing import Any

import pytest

from stepwell.store.base import Store
from stepwell.store.records import EventRecord

TTL = 60_000


def event(event_id: str, name: str = "order/placed", **kw: Any) -> EventRecord:
    return EventRecord(
        event_id=event_id, name=name, data={"id": event_id}, ts=1, received_at=2, **kw
    )


async def test_an_event_reads_back_as_written(store: Store) -> None:
    full = EventRecord(
        event_id="01E",
        name="app/user.created",
        data={"user": {"id": 7, "tags": ["a", "b"]}, "ratio": 0.5, "none": None},
        ts=1_700_000_000_000,
        received_at=1_700_000_000_123,
        user={"external_id": "u-7"},
        dedupe_key="signup-7",
        source="sdk",
    )
    await store.run(lambda tx: tx.insert_event(full))
    assert await store.read(lambda tx: tx.get_event("01E")) == full
    assert await store.read(lambda tx: tx.get_event("missing")) is None


async def test_inserting_an_event_id_twice_raises(store: Store) -> None:
    await store.run(lambda tx: tx.insert_event(event("01E")))
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its driver's error
        await store.run(lambda tx: tx.insert_event(event("01E", name="other")))
    assert (await store.read(lambda tx: tx.get_event("01E"))) == event("01E")


async def test_get_events_follows_the_requested_order(store: Store) -> None:
    await store.run(lambda tx: [tx.insert_event(event(i)) for i in ("01A", "01B", "01C")])
    got = await store.read(lambda tx: tx.get_events(["01C", "missing", "01A", "01B"]))
    assert [e.event_id for e in got] == ["01C", "01A", "01B"]
    assert await store.read(lambda tx: tx.get_events([])) == []


async def test_list_events_newest_first_by_name_with_cursor(store: Store) -> None:
    names = {"01A": "a/x", "01B": "b/y", "01C": "a/x", "01D": "a/x", "01E": "b/y"}
    await store.run(lambda tx: [tx.insert_event(event(i, n)) for i, n in names.items()])

    every = await store.read(lambda tx: tx.list_events())
    assert [e.event_id for e in every] == ["01E", "01D", "01C", "01B", "01A"]
    page1 = await store.read(lambda tx: tx.list_events("a/x", limit=2))
    assert [e.event_id for e in page1] == ["01D", "01C"]
    page2 = await store.read(lambda tx: tx.list_events("a/x", cursor="01C", limit=2))
    assert [e.event_id for e in page2] == ["01A"]
    assert await store.read(lambda tx: tx.list_events("nothing/here")) == []


async def test_dedupe_key_is_held_for_its_ttl(store: Store) -> None:
    assert await store.run(lambda tx: tx.claim_dedupe_key("k", "01A", 1_000, TTL)) is None
    held = await store.run(lambda tx: tx.claim_dedupe_key("k", "01B", 1_000 + TTL - 1, TTL))
    assert held == "01A"
    assert await store.run(lambda tx: tx.claim_dedupe_key("other", "01C", 1_000, TTL)) is None


async def test_expired_dedupe_key_can_be_claimed_again(store: Store) -> None:
    await store.run(lambda tx: tx.claim_dedupe_key("k", "01A", 1_000, TTL))
    assert await store.run(lambda tx: tx.claim_dedupe_key("k", "01B", 1_000 + TTL, TTL)) is None
    # the new holder keeps it for a full TTL from its own claim
    later = 1_000 + 2 * TTL - 1
    assert await store.run(lambda tx: tx.claim_dedupe_key("k", "01C", later, TTL)) == "01B"

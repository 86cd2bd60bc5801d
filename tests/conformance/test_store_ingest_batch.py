"""The verbs ingest calls once per batch: events inserted together, dedupe keys claimed together,
awaited event names, keyed waits by a list of keys."""

from __future__ import annotations

import pytest

from stepwell.store.base import Store
from stepwell.store.records import EventRecord, WaitRecord

TTL = 24 * 3600 * 1000


def event(event_id: str, name: str = "shop/order", n: int = 0) -> EventRecord:
    return EventRecord(event_id, name, {"n": n}, 1_000, 1_000, {"u": 1}, None, "api")


def wait(wait_id: str, event_name: str, match_value: str | None = None) -> WaitRecord:
    return WaitRecord(
        wait_id=wait_id,
        kind="step",
        run_id=f"run-{wait_id}",
        function_id="shop-fn",
        event_name=event_name,
        expires_at=10_000,
        step_key="s",
        match_path="data.id" if match_value is not None else None,
        match_value=match_value,
    )


@pytest.mark.parametrize("count", [1, 5, 100, 341])
async def test_events_inserted_together_read_back_whole(store: Store, count: int) -> None:
    events = [event(f"01E{n:05d}", n=n) for n in range(count)]
    await store.run(lambda tx: tx.insert_events(events))
    got = await store.read(lambda tx: tx.get_events([e.event_id for e in events]))
    assert got == events


async def test_a_duplicate_event_id_in_a_batch_fails_the_unit(store: Store) -> None:
    await store.run(lambda tx: tx.insert_events([event("01A")]))
    with pytest.raises(Exception):  # noqa: B017 (each driver raises its own IntegrityError)
        await store.run(lambda tx: tx.insert_events([event("01B"), event("01A")]))
    assert await store.read(lambda tx: tx.get_event("01B")) is None


async def test_dedupe_keys_claimed_together_keep_the_first_holder(store: Store) -> None:
    assert await store.run(lambda tx: tx.claim_dedupe_keys([("old", "01A")], 1_000, TTL)) == {
        "old": "01A"
    }
    claims = [("new", "01B"), ("old", "01C"), ("new", "01D"), ("other", "01E")]
    holders = await store.run(lambda tx: tx.claim_dedupe_keys(claims, 2_000, TTL))
    assert holders == {"new": "01B", "old": "01A", "other": "01E"}
    # An expired key is taken over; single claims see what the batch wrote.
    later = 2_000 + TTL
    holders = await store.run(lambda tx: tx.claim_dedupe_keys([("old", "01F")], later, TTL))
    assert holders == {"old": "01F"}
    assert await store.run(lambda tx: tx.claim_dedupe_key("new", "01G", later - 1, TTL)) == "01B"


async def test_many_dedupe_keys_in_one_claim(store: Store) -> None:
    await store.run(
        lambda tx: tx.claim_dedupe_keys([(f"k{n}", "01A") for n in range(0, 300, 2)], 0, TTL)
    )
    claims = [(f"k{n}", f"01B{n:04d}") for n in range(300)]
    holders = await store.run(lambda tx: tx.claim_dedupe_keys(claims, 1, TTL))
    assert holders == {f"k{n}": "01A" if n % 2 == 0 else f"01B{n:04d}" for n in range(300)}


async def test_waited_event_names_are_those_with_any_wait(store: Store) -> None:
    await store.run(
        lambda tx: [tx.insert_wait(w) for w in (wait("w1", "a", '"x"'), wait("w2", "b"))]
    )
    names = ["a", "b", "c", "a"]
    assert await store.read(lambda tx: tx.waited_event_names(names)) == {"a", "b"}
    assert await store.read(lambda tx: tx.waited_event_names([])) == set()


async def test_keyed_waits_among_many_keys_come_oldest_first(store: Store) -> None:
    waits = [wait(f"01W{n:04d}", "a", f'"k{n % 400}"') for n in range(600)]
    waits.append(wait("01X", "b", '"k1"'))  # another event name
    await store.run(lambda tx: [tx.insert_wait(w) for w in waits])
    keys = [f'"k{n}"' for n in range(400) if n % 3] + ['"k1"', '"none"']  # over one IN list
    found = await store.read(lambda tx: tx.find_keyed_waits_among("a", "data.id", keys))
    assert found == [w for w in waits[:600] if w.match_value in set(keys)]
    assert await store.read(lambda tx: tx.find_keyed_waits_among("a", "data.x", keys)) == []

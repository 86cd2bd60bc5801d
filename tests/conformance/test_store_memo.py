"""The memo (step log): first write wins, completion order, one result per step."""

from __future__ import annotations

import asyncio

from stepwell.store.base import Store, Tx


def put(tx: Tx, step_key: str, value: object, run_id: str = "run-1", now: int = 1_000) -> bool:
    return tx.put_memo(run_id, step_key, f"id-{step_key}", "run", value, now)


async def test_first_write_wins(store: Store) -> None:
    assert await store.run(lambda tx: put(tx, "k", {"data": "first"})) is True
    assert await store.run(lambda tx: put(tx, "k", {"data": "second"}, now=2_000)) is False

    [memo] = await store.read(lambda tx: tx.get_memo("run-1"))
    assert memo.value == {"data": "first"}
    assert memo.created_at == 1_000


async def test_concurrent_writers_of_one_step_record_one_result(store: Store) -> None:
    wrote = await asyncio.gather(
        *(store.run(lambda tx, n=n: put(tx, "k", {"data": n})) for n in range(20))
    )
    assert wrote.count(True) == 1
    [memo] = await store.read(lambda tx: tx.get_memo("run-1"))
    assert memo.value == {"data": wrote.index(True)}


async def test_memo_is_returned_in_completion_order(store: Store) -> None:
    for key in ("zeta", "alpha", "mid"):
        await store.run(lambda tx, k=key: put(tx, k, {"data": k}))
    await store.run(lambda tx: put(tx, "alpha", {"data": "again"}))  # ignored, keeps its place
    await store.run(lambda tx: put(tx, "other", None, run_id="run-2"))

    memo = await store.read(lambda tx: tx.get_memo("run-1"))
    assert [m.step_key for m in memo] == ["zeta", "alpha", "mid"]
    assert [m.seq for m in memo] == sorted(m.seq for m in memo)
    assert len({m.seq for m in memo}) == 3


async def test_memo_keeps_every_field_and_any_json_value(store: Store) -> None:
    values = [None, {"error": {"name": "E", "message": "m"}}, {"data": [1, "two", 3.5, True]}]
    for n, value in enumerate(values):
        await store.run(
            lambda tx, n=n, v=value: tx.put_memo(
                "run-1", f"k{n}", "step", "wait", v, 10 + n, started_at=5, attempts=3
            )
        )
    memo = await store.read(lambda tx: tx.get_memo("run-1"))
    assert [m.value for m in memo] == values
    first = memo[0]
    assert (first.run_id, first.step_id, first.kind) == ("run-1", "step", "wait")
    assert (first.created_at, first.started_at, first.attempts) == (10, 5, 3)


async def test_memo_of_an_unknown_run_is_empty(store: Store) -> None:
    assert await store.read(lambda tx: tx.get_memo("nope")) == []


async def test_memo_of_some_steps_only(store: Store) -> None:
    for key in ("zeta", "alpha", "mid"):
        await store.run(lambda tx, k=key: put(tx, k, {"data": k}))
    await store.run(lambda tx: put(tx, "alpha", None, run_id="run-2"))

    some = await store.read(lambda tx: tx.get_memo("run-1", ["mid", "zeta", "absent", "mid"]))
    assert [(m.step_key, m.value) for m in some] == [
        ("zeta", {"data": "zeta"}),
        ("mid", {"data": "mid"}),
    ]
    assert await store.read(lambda tx: tx.get_memo("run-1", [])) == []
    many = [f"k{n}" for n in range(300)] + ["alpha"]  # past one IN list
    [alpha] = await store.read(lambda tx: tx.get_memo("run-1", many))
    assert alpha.value == {"data": "alpha"}

"""put_memos: several steps' memo rows in one statement, each as put_memo would write it."""

from __future__ import annotations

from typing import Any

from stepwell.store.base import Store
from stepwell.store.records import INPUT_KIND, MemoRecord


def memo(step_key: str, value: Any, run_id: str = "run-1", kind: str = "run") -> MemoRecord:
    return MemoRecord(run_id, step_key, f"id-{step_key}", kind, value, 0, 1_000, 900, 2, [1])


async def test_several_steps_are_written_in_order_after_the_runs_memo(store: Store) -> None:
    await store.run(lambda tx: tx.put_memo("run-1", "first", "id-first", "run", None, 500))
    rows = [memo(k, {"data": k}) for k in ("zeta", "alpha", "mid")]
    assert await store.run(lambda tx: tx.put_memos(rows)) == [True, True, True]

    stored = await store.read(lambda tx: tx.get_memo("run-1"))
    assert [m.step_key for m in stored] == ["first", "zeta", "alpha", "mid"]
    assert len({m.seq for m in stored}) == 4
    zeta = stored[1]
    assert (zeta.step_id, zeta.kind, zeta.value) == ("id-zeta", "run", {"data": "zeta"})
    assert (zeta.created_at, zeta.started_at, zeta.attempts, zeta.input) == (1_000, 900, 2, [1])


async def test_the_first_write_wins_row_by_row(store: Store) -> None:
    await store.run(lambda tx: tx.put_memo("run-1", "done", "id-done", "run", {"data": 0}, 500))
    await store.run(
        lambda tx: tx.put_memo("run-1", "seeded", "id-seeded", INPUT_KIND, {"input": [2]}, 500)
    )
    rows = [memo("new", {"data": 1}), memo("done", {"data": 2}), memo("seeded", {"data": 3})]
    assert await store.run(lambda tx: tx.put_memos(rows)) == [True, False, True]

    stored = {m.step_key: m for m in await store.read(lambda tx: tx.get_memo("run-1"))}
    assert stored["done"].value == {"data": 0}
    assert (stored["seeded"].kind, stored["seeded"].value) == ("run", {"data": 3})
    assert stored["new"].value == {"data": 1}


async def test_a_step_given_twice_is_written_once_and_runs_are_kept_apart(store: Store) -> None:
    rows = [
        memo("a", {"data": 1}),
        memo("a", {"data": 2}, run_id="run-2"),
        memo("a", {"data": 3}),
        memo("b", {"data": 4}, run_id="run-2"),
    ]
    assert await store.run(lambda tx: tx.put_memos(rows)) == [True, True, False, True]
    one = await store.read(lambda tx: tx.get_memo("run-1"))
    two = await store.read(lambda tx: tx.get_memo("run-2"))
    assert [(m.step_key, m.value) for m in one] == [("a", {"data": 1})]
    assert [(m.step_key, m.value) for m in two] == [("a", {"data": 2}), ("b", {"data": 4})]


async def test_more_rows_than_one_statement_holds(store: Store) -> None:
    rows = [memo(f"k{n:03}", {"data": n}) for n in range(75)]
    assert await store.run(lambda tx: tx.put_memos(rows)) == [True] * 75
    stored = await store.read(lambda tx: tx.get_memo("run-1"))
    assert [m.step_key for m in stored] == [m.step_key for m in rows]
    assert await store.run(lambda tx: tx.put_memos([])) == []

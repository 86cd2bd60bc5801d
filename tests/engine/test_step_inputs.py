"""Step inputs: the arguments of ``step.run(id, fn, *args)`` are recorded with the step, and a
rerun from a step can run it with edited arguments (earlier steps memoized), on both stores."""

from __future__ import annotations

from typing import Any

import pytest

import stepwell
from stepwell.engine.operations import rerun_from_step
from stepwell.errors import ConfigError
from stepwell.store.records import INPUT_KIND, MemoRecord
from tests.flow.conftest import Bed, BedFactory, backend, bed

__all__ = ["backend", "bed"]

app = stepwell.App("inputs")
prepared: list[int] = []
charged: list[tuple[int, str]] = []


def prepare(amount: int) -> dict[str, int]:
    prepared.append(amount)
    return {"amount": amount}


def charge(amount: int, currency: str) -> dict[str, Any]:
    charged.append((amount, currency))
    return {"charged": amount, "currency": currency}


@app.function("bill", trigger="bill/due")
async def bill(ctx: stepwell.Context) -> dict[str, Any]:
    order = await ctx.step.run("prepare", prepare, ctx.event.data["amount"])
    receipt = await ctx.step.run("charge", charge, order["amount"], "EUR")
    note = await ctx.step.run("note", lambda: "sent")
    return {**receipt, "note": note}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    prepared.clear()
    charged.clear()


async def _memo(b: Bed, run_id: str) -> dict[str, MemoRecord]:
    memo = await b.engine.store.read(lambda tx: tx.get_memo(run_id))
    return {m.step_id: m for m in memo}


async def _billed(b: Bed, amount: int) -> str:
    await b.send("bill/due", {"amount": amount})
    await b.settle()
    [run] = await b.runs("bill")
    assert run.status == "Completed"
    return run.run_id


async def test_a_steps_arguments_are_recorded_as_its_input(bed: BedFactory) -> None:
    async with bed(app) as b:
        memo = await _memo(b, await _billed(b, 10))
        assert memo["prepare"].input == [10]
        assert memo["charge"].input == [10, "EUR"]
        assert memo["note"].input is None  # called without arguments


async def test_rerun_from_a_step_with_edited_input(bed: BedFactory) -> None:
    async with bed(app) as b:
        first = await _billed(b, 10)
        key = (await _memo(b, first))["charge"].step_key
        rerun = await rerun_from_step(b.engine, first, key, input=[99, "USD"])
        await b.settle()
        done = await b.engine.get_run(rerun.run_id)
        assert done.status == "Completed"
        assert done.output == {"charged": 99, "currency": "USD", "note": "sent"}
        assert prepared == [10]  # memoized in the rerun, not run again
        assert charged == [(10, "EUR"), (99, "USD")]
        memo = await _memo(b, rerun.run_id)
        # the step's outcome replaced the seeded input, after the memoized step
        assert memo["charge"].kind == "run" and memo["charge"].input == [99, "USD"]
        assert memo["charge"].value == {"data": {"charged": 99, "currency": "USD"}}
        assert memo["prepare"].seq < memo["charge"].seq < memo["note"].seq
        # the original run is untouched
        assert (await _memo(b, first))["charge"].input == [10, "EUR"]


async def test_an_input_is_refused_where_it_cannot_apply(bed: BedFactory) -> None:
    async with bed(app) as b:
        first = await _billed(b, 10)
        memo = await _memo(b, first)
        with pytest.raises(ConfigError, match="recorded no input"):
            await rerun_from_step(b.engine, first, memo["note"].step_key, input=[1])
        with pytest.raises(ConfigError, match="list of its arguments"):
            await rerun_from_step(b.engine, first, memo["charge"].step_key, input={"a": 1})  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="needs the step"):
            await rerun_from_step(b.engine, first, None, input=[1])
        assert len(await b.runs("bill")) == 1  # nothing started


async def test_a_seeded_input_is_replaced_once_and_outcomes_stay_first_write_wins(
    bed: BedFactory,
) -> None:
    async with bed(app) as b:
        store = b.engine.store

        def seed(tx: Any) -> list[bool]:
            return [
                tx.put_memo("r1", "k", "s", INPUT_KIND, {"input": [1]}, 1, None, 1, [1]),
                tx.put_memo("r1", "k", "s", "run", {"data": 2}, 2, None, 1, [1]),
                tx.put_memo("r1", "k", "s", "run", {"data": 3}, 3, None, 1, [1]),
            ]

        assert await store.run(seed) == [True, True, False]
        [row] = await store.read(lambda tx: tx.get_memo("r1"))
        assert (row.kind, row.value, row.input) == ("run", {"data": 2}, [1])

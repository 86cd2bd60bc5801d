"""Ids: ULIDs in monotonic mode, strictly increasing within a process, unique across processes."""

from __future__ import annotations

import itertools
import os
import threading

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from stepwell.ids import MonotonicIds, encode, new_id

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_the_text_form_is_ulids(value: int) -> None:
    assert encode(value) == str(ULID.from_int(value))


def test_ids_are_ulids_of_the_current_millisecond() -> None:
    ids = MonotonicIds()
    text = ids.new(1_700_000_000_123)
    assert len(text) == 26 and set(text) <= CROCKFORD
    assert ULID.from_str(text).milliseconds == 1_700_000_000_123
    assert ULID.from_str(new_id()).milliseconds > 1_700_000_000_000


def test_ids_of_one_millisecond_strictly_increase() -> None:
    ids = MonotonicIds()
    made = [ids.new(1_700_000_000_000) for _ in range(5000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    values = [int(ULID.from_str(i)) for i in made]
    assert [b - a for a, b in itertools.pairwise(values)] == [1] * (len(made) - 1)
    nxt = ids.new(1_700_000_000_001)  # a new millisecond: a new random draw, still later
    assert nxt > made[-1] and ULID.from_str(nxt).milliseconds == 1_700_000_000_001


def test_a_clock_stepping_back_keeps_ids_increasing() -> None:
    ids = MonotonicIds()
    first = ids.new(1_700_000_000_500)
    assert first < ids.new(1_700_000_000_100) < ids.new(1_700_000_000_400)


def test_ids_stay_unique_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in made:
        assert out == sorted(out)
    assert len({i for out in made for i in out}) == 20_000


def test_two_generators_of_one_millisecond_do_not_collide() -> None:
    a, b = MonotonicIds(), MonotonicIds()
    made = [g.new(1_700_000_000_000) for _ in range(1000) for g in (a, b)]
    assert len(set(made)) == len(made)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # the parent is mid-millisecond, with a sequence the child must not continue
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, " ".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1 << 16).decode().split()
    os.waitpid(pid, 0)
    os.close(read)
    parent = [new_id() for _ in range(50)]
    assert len(child) == 50 and not set(child) & set(parent)

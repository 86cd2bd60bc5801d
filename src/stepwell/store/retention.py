"""Retention: pruning ended runs, and what only they used, in short transactions.

:func:`prune` repeats :meth:`~stepwell.store.base.Tx.prune_ended_runs` in batches until nothing
older than the cutoff is left, so pruning a long history beside live nodes never holds locks
for long; a crash midway leaves a consistent store and the next call carries on.
"""

from __future__ import annotations

from stepwell.store.base import PruneCount, Store

DEFAULT_BATCH = 500


async def prune(
    store: Store, ended_before: int, *, batch: int = DEFAULT_BATCH, dry_run: bool = False
) -> PruneCount:
    """Delete runs that ended before ``ended_before`` (epoch ms) with their memo, ``run_events``
    and the events no remaining run references; returns the totals.

    Args:
        store: an open store.
        ended_before: the cutoff, epoch milliseconds.
        batch: runs (and events) per transaction.
        dry_run: count what would go, delete nothing.
    """
    if dry_run:
        return await store.read(lambda tx: tx.prune_ended_runs(ended_before, batch, dry_run=True))
    total = PruneCount()
    while True:
        count = await store.run(lambda tx: tx.prune_ended_runs(ended_before, batch))
        total += count
        if count == PruneCount():
            return total

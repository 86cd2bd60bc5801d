"""Wake-ups: how an idle node learns, without polling, that there is work for it.

An idle node's dispatch loop sleeps until its next due queue item or cron tick, or until its
wake event is set. Work this node makes sets the event directly. Work another node commits
reaches it through the store, when the store can announce it (PostgreSQL's LISTEN/NOTIFY): a
:func:`listen` task turns each announcement into a set of the same event, so the loop waits on
one thing.

Announcements are a speed-up, never the only path. One can be missed (the listener's
connection dropped, or the store announces only work due *now*), and nothing announces that a
dead node's lease expired; so an idle node also looks at the queue every :func:`idle_poll_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final, Protocol, cast

log = logging.getLogger("stepwell.engine.wakeups")

IDLE_POLL_MS: Final = 60_000
"""How long an idle node sleeps with no due item, no cron tick and no wake-up (ms)."""
LISTEN_WAIT_S: Final = 60.0
"""How long one wait on the store lasts before the next begins (s); costs no query."""
RETRY_MAX_S: Final = 30.0
"""The longest pause between attempts to listen again after the store failed (s)."""


class Notifier(Protocol):
    """A store that announces work another node made due (``PostgresStore``)."""

    async def wait_for_notify(self, timeout_s: float) -> bool:
        """True once another node committed work due now; False after ``timeout_s``."""
        ...


def notifier_of(store: object) -> Notifier | None:
    """The store as a :class:`Notifier`, or None if it cannot announce other nodes' work."""
    # the method on the class, not isinstance against the protocol: this runs on every idle
    # look of the dispatch loop, and a runtime protocol check walks the protocol's attributes
    return (
        cast(Notifier, store) if callable(getattr(type(store), "wait_for_notify", None)) else None
    )


def idle_poll_ms(store: object, lease_ms: int) -> int:
    """How long an idle node may sleep before looking at the queue again.

    Alone on its store (SQLite), a node knows every item it will have to run: it looks once a
    minute. On a shared store, another node may die holding leases, and nothing announces their
    expiry: a node looks at least once per lease, so a dead node's items are taken over within
    about two leases.
    """
    if notifier_of(store) is None:
        return IDLE_POLL_MS
    return max(1, min(IDLE_POLL_MS, lease_ms))


async def listen(store: object, wake: asyncio.Event) -> asyncio.Task[None] | None:
    """Start setting ``wake`` whenever the store announces due work; None if it cannot.

    Returns once the store listens, so that work committed from then on is announced: call it
    before the first look at the queue. Cancel the task to stop.
    """
    notifier = notifier_of(store)
    if notifier is None:
        return None
    # A zero wait opens the listener; a failure here is retried, and logged, by _pump.
    with contextlib.suppress(Exception):
        await notifier.wait_for_notify(0)
    return asyncio.create_task(_pump(notifier, wake), name="stepwell-wakeups")


async def _pump(notifier: Notifier, wake: asyncio.Event) -> None:
    failures = 0
    while True:
        try:
            woken = await notifier.wait_for_notify(LISTEN_WAIT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            if failures == 1:
                log.warning("cannot listen for other nodes' work (%s); polling meanwhile", exc)
            await asyncio.sleep(min(RETRY_MAX_S, 0.25 * 2 ** min(failures, 8)))
            continue
        if failures:
            log.info("listening for other nodes' work again")
            failures = 0
        if woken:
            wake.set()

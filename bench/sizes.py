"""How big each workload is in quick and full mode, shared by stepwell's side and the peers'."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sizes:
    """The size of every workload of one mode."""

    w1_runs: int = 20
    """W1: runs of 10 sequential steps timed (after ``w1_warmup`` untimed ones)."""
    w1_warmup: int = 3
    w2_runs: int = 1000
    """W2: runs of 3 steps started at once."""
    w3_events: int = 200
    """W3: events sent one at a time, each starting a run whose first step's start is timed."""
    w4_children: int = 1000
    """W4: events one run sends, each starting a one-step child run."""
    w5_runs: int = 100_000
    """W5: runs that sleep at once."""
    w5_sleep_s: float = 480.0
    """W5: how long each run sleeps, seconds: 60 s in quick mode; in full mode long enough for
    all runs to be asleep at once (they start at ``w5_rate``)."""
    w5_rate: float = 250.0
    """W5: runs started per second, 10 at a time, so that they wake at that rate too."""
    w6_seconds: float = 10.0
    """W6: how long the client sends batches of 100 events, seconds."""
    w7_waits: int = 100_000
    """W7: runs waiting for an event at once."""
    w7_matches: int = 10_000
    """W7: matching events sent, each resuming one waiting run."""
    peer_w5_runs: int = 10_000
    """W5 on a peer (DBOS, Restate): runs that sleep at once."""
    peer_w5_sleep_s: float = 60.0
    """W5 on a peer: how long each run sleeps, seconds (all of them start within it)."""
    peer_w7_waits: int = 10_000
    """W7 on a peer: runs waiting at once."""
    peer_w7_matches: int = 1_000
    """W7 on a peer: matching messages sent, each resuming one waiting run."""


FULL = Sizes()
QUICK = Sizes(
    w5_runs=10_000,
    w5_sleep_s=60.0,
    w7_waits=10_000,
    w7_matches=1_000,
    peer_w5_runs=1_000,
    peer_w5_sleep_s=15.0,
    peer_w7_waits=1_000,
    peer_w7_matches=100,
)
"""The peers' W5 and W7 are smaller (1,000 runs sleeping 15 s, 1,000 waits) so that the whole
quick run stays under 10 minutes."""
TINY = Sizes(
    w1_runs=3,
    w1_warmup=1,
    w2_runs=20,
    w3_events=10,
    w4_children=20,
    w5_runs=50,
    w5_sleep_s=2.0,
    w6_seconds=1.0,
    w7_waits=50,
    w7_matches=10,
    peer_w5_runs=20,
    peer_w5_sleep_s=2.0,
    peer_w7_waits=20,
    peer_w7_matches=5,
)
"""A smoke-test size: every workload runs, in seconds; its figures mean nothing."""

MODES = {"quick": QUICK, "full": FULL, "tiny": TINY}

"""The dashboard's runs page on a large history: how long it takes to answer.

``python -m bench.dashboard [--runs 1000000] [--store sqlite|postgres|both]``

Fills a fresh database with ``--runs`` ended runs (spread over 30 days, 20 functions, every
status, one trigger event each) written straight into the tables in large batches, then asks the
running dashboard (the engine's HTTP app, served in process through an ASGI transport) for the
pages people open: the runs list, filtered by function, by status, by time range and by event
name, the second page of each (cursor), and one run. Prints the median and worst of 5 requests per
page. The goal (issue #7): under 300 ms on 1,000,000 runs, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from stepwell.engine.api.app import build_app
from stepwell.engine.engine import Engine
from stepwell.store import open_store

DAY = 86_400_000
FUNCTIONS = [f"bench-fn{i:02d}" for i in range(20)]
STATUSES = ["Completed"] * 7 + ["Failed", "Cancelled", "Running"]
PG_URL = os.environ.get("STEPWELL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 20_000


def _rows(start: int, count: int, now: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    runs, events = [], []
    for n in range(start, start + count):
        created = now - 30 * DAY + n * (30 * DAY // 1_000_000) % (30 * DAY)
        run_id = f"01R{n:023d}"
        event_id = f"01E{n:023d}"
        status = STATUSES[(n // len(FUNCTIONS)) % len(STATUSES)]
        ended = None if status == "Running" else created + 1500
        function = FUNCTIONS[n % len(FUNCTIONS)]
        runs.append(
            (run_id, function, 1, "bench", status, event_id, f'["{event_id}"]', created, ended)
        )
        events.append((event_id, f"bench/e{n % 20:02d}", f'{{"n": {n}}}', "{}", created, created))
    return runs, events


_RUN_SQL = (
    "INSERT INTO runs (run_id, function_id, function_version, app_id, status, event_id, "
    "event_ids, created_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENT_SQL = (
    'INSERT INTO events (event_id, name, data, "user", ts, received_at, source) '
    "VALUES (?, ?, ?, ?, ?, ?, 'api')"
)
_LINK_SQL = "INSERT INTO run_events (event_id, run_id) VALUES (?, ?)"


def fill_sqlite(path: Path, count: int, now: int) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        for start in range(0, count, BATCH):
            runs, events = _rows(start, min(BATCH, count - start), now)
            conn.executemany(_RUN_SQL, runs)
            conn.executemany(_EVENT_SQL, events)
            conn.executemany(_LINK_SQL, [(r[5], r[0]) for r in runs])
        conn.execute("ANALYZE")


def fill_postgres(url: str, count: int, now: int) -> None:
    import pg8000.native

    from stepwell.store.postgres import parse_url

    target = parse_url(url)
    conn = pg8000.native.Connection(
        target.user, host=target.host, port=target.port, database=target.database
    )
    try:
        conn.run(f"SET search_path TO {target.schema}")
        # Generated in the server: a million rows in seconds, not minutes of round trips.
        step = 30 * DAY // max(count, 1)
        conn.run(
            "INSERT INTO runs (run_id, function_id, function_version, app_id, status, event_id, "
            "event_ids, created_at, ended_at) SELECT '01R' || lpad(n::text, 23, '0'), "
            "'bench-fn' || lpad((n % 20)::text, 2, '0'), 1, 'bench', "
            "(ARRAY['Completed','Completed','Completed','Completed','Completed','Completed',"
            "'Completed','Failed','Cancelled','Running'])[(n / 20) % 10 + 1], "
            "'01E' || lpad(n::text, 23, '0'), '[\"01E' || lpad(n::text, 23, '0') || '\"]', "
            ":base::bigint + n * :step::bigint, CASE WHEN (n / 20) % 10 = 9 THEN NULL ELSE :base::bigint + n * :step::bigint + 1500 END "
            "FROM generate_series(0, :last) AS n",
            base=now - 30 * DAY,
            step=step,
            last=count - 1,
        )
        conn.run(
            'INSERT INTO events (event_id, name, data, "user", ts, received_at, source) '
            "SELECT '01E' || lpad(n::text, 23, '0'), 'bench/e' || lpad((n % 20)::text, 2, '0'), "
            "'{\"n\": ' || n || '}', '{}', :base::bigint + n * :step::bigint, "
            ":base::bigint + n * :step::bigint, 'api' "
            "FROM generate_series(0, :last) AS n",
            base=now - 30 * DAY,
            step=step,
            last=count - 1,
        )
        conn.run(
            "INSERT INTO run_events (event_id, run_id) SELECT '01E' || lpad(n::text, 23, '0'), "
            "'01R' || lpad(n::text, 23, '0') FROM generate_series(0, :last) AS n",
            last=count - 1,
        )
        conn.run("ANALYZE")
    finally:
        conn.close()


PAGES = {
    "runs list": "/",
    "by function": "/?function=bench-fn07",
    "by status": "/?status=Failed",
    "last hour": "/?range=1h",
    "by event name": "/?event=bench/e03",
    "function + status": "/?function=bench-fn03&status=Cancelled",
    "function, no match": "/?function=bench-fn03&status=Queued",
}


async def time_pages(url: str) -> dict[str, tuple[float, float]]:
    store = open_store(url)
    engine = Engine(store)
    await engine.start(loops=False)
    results: dict[str, tuple[float, float]] = {}
    try:
        transport = httpx.ASGITransport(app=build_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            pages = dict(PAGES)
            first = (await client.get("/")).text
            cursor = re.search(r'href="(/\?[^"]*cursor=[^"]+)"', first)
            if cursor:
                pages["second page"] = cursor.group(1).replace("&amp;", "&")
            run = re.search(r'href="(/runs/01R[0-9]+)"', first)
            if run:
                pages["one run"] = run.group(1)
            for name, path in pages.items():
                samples = []
                for _ in range(5):
                    start = time.perf_counter()
                    response = await client.get(path)
                    samples.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                results[name] = (statistics.median(samples), max(samples))
    finally:
        await engine.stop()
    return results


async def run_store(kind: str, count: int) -> dict[str, tuple[float, float]]:
    now = int(time.time() * 1000)
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "runs.db"
            store = open_store(f"sqlite:///{path}")
            await store.open()  # creates the schema
            await store.close()
            fill_sqlite(path, count, now)
            return await time_pages(f"sqlite:///{path}")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    store = open_store(url)
    await store.open()
    await store.close()
    try:
        fill_postgres(url, count, now)
        return await time_pages(url)
    finally:
        import pg8000.native

        from stepwell.store.postgres import parse_url

        target = parse_url(PG_URL)
        conn = pg8000.native.Connection(
            target.user, host=target.host, port=target.port, database=target.database
        )
        conn.run(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs:,} runs")
    for kind in ("sqlite", "postgres") if args.store == "both" else (args.store,):
        started = time.perf_counter()
        results = asyncio.run(run_store(kind, args.runs))
        print(f"\n{kind} (filled and measured in {time.perf_counter() - started:.0f} s)")
        print(f"{'page':<20} {'median ms':>10} {'worst ms':>10}  (5 requests)")
        for name, (median, worst) in results.items():
            print(f"{name:<20} {median:>10.1f} {worst:>10.1f}")


if __name__ == "__main__":
    main()

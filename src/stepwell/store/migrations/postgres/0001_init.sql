-- stepwell schema, version 1 (PostgreSQL).
--
-- The data model
-- --------------
-- The same tables and columns as sqlite/0001_init.sql, so one set of SQL statements
-- (stepwell/store/sql.py) serves both:
--
-- apps            an app: a set of functions synced together (url, sdk, checksum of the sync).
-- functions       one row per function id: its Inngest FunctionConfig JSON and a `version` that
--                 moves only when the config's checksum changes.
-- events          accepted events, immutable; `event_id` is a ULID, so its order is arrival order.
-- event_dedupe    user-given event ids (`dedupe_key`) held for a TTL.
-- runs            one execution of a function for one event, batch or cron tick; `event_ids`
--                 keeps the trigger events in order (JSON), `run_events` indexes them.
-- run_events      (event_id, run_id) for every trigger event of every run.
-- memo            the step log: one row per (run_id, step_key), first write wins; `seq` is the
--                 completion order within the run.
-- queue           durable scheduled work with leases; `item_id` is deterministic and
--                 `generation` counts re-enqueues of the same id.
-- waits           pending wait_for_event steps and cancel_on conditions, found by
--                 (event_name, match_path, match_value).
-- cron_ticks      one row per (function_id, tick_at) that fired: the primary key is what makes a
--                 tick fire at most once across every node sharing the database.
-- schema_migrations  one row per applied migration file.
--
-- Conventions
-- -----------
-- Times are epoch milliseconds (BIGINT); counters are INTEGER.
-- JSON is TEXT, not JSONB: the store (de)serialises it with orjson and no query looks inside it
-- (waits are matched on the `match_value` column), while JSONB would reorder an event's keys,
-- drop duplicate ones and cost a parse on every write and a re-encode on every read.
-- Ids and names are TEXT COLLATE "C": byte order, as in SQLite, so cursors over ULIDs and
-- ORDER BY agree across backends whatever the database's locale, and comparisons are cheap.
-- The queue keeps lease columns out of every index and leaves free space in its pages, so a
-- claim, a lease renewal or a dropped lease is a heap-only (HOT) update that touches no index.

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    app_id      TEXT COLLATE "C" PRIMARY KEY,
    url         TEXT,
    sdk         TEXT,
    framework   TEXT,
    checksum    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL,
    error       TEXT
);

CREATE TABLE functions (
    function_id TEXT COLLATE "C" PRIMARY KEY,
    app_id      TEXT COLLATE "C" NOT NULL,
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX functions_by_app ON functions (app_id, function_id);

CREATE TABLE events (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    data        TEXT NOT NULL,
    "user"      TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    dedupe_key  TEXT,
    source      TEXT NOT NULL
);
CREATE INDEX events_by_name ON events (name, event_id);

CREATE TABLE event_dedupe (
    dedupe_key  TEXT COLLATE "C" PRIMARY KEY,
    event_id    TEXT COLLATE "C" NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE runs (
    run_id           TEXT COLLATE "C" PRIMARY KEY,
    function_id      TEXT COLLATE "C" NOT NULL,
    function_version INTEGER NOT NULL,
    app_id           TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    event_id         TEXT COLLATE "C" NOT NULL,
    event_ids        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    started_at       BIGINT,
    ended_at         BIGINT,
    output           TEXT,
    error            TEXT,
    parent_run_id    TEXT COLLATE "C",
    parent_step_key  TEXT COLLATE "C",
    cancel_reason    TEXT
);
-- list_runs walks these newest first (backwards); run_id breaks ties so cursors are stable.
CREATE INDEX runs_by_created ON runs (created_at, run_id);
CREATE INDEX runs_by_function ON runs (function_id, created_at, run_id);
CREATE INDEX runs_by_status ON runs (status, created_at, run_id);
CREATE INDEX runs_by_parent ON runs (parent_run_id, parent_step_key)
    WHERE parent_run_id IS NOT NULL;

-- runs_for_event and list_runs(event_id=...) probe the primary key by event_id.
CREATE TABLE run_events (
    event_id    TEXT COLLATE "C" NOT NULL,
    run_id      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, run_id)
);

CREATE TABLE memo (
    run_id      TEXT COLLATE "C" NOT NULL,
    step_key    TEXT COLLATE "C" NOT NULL,
    step_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT,
    seq         INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, step_key)
);
-- get_memo reads a run in completion order; put_memo reads the run's highest seq.
CREATE INDEX memo_by_run ON memo (run_id, seq);

CREATE TABLE queue (
    item_id          TEXT COLLATE "C" PRIMARY KEY,
    kind             TEXT NOT NULL,
    run_id           TEXT COLLATE "C" NOT NULL,
    function_id      TEXT COLLATE "C" NOT NULL,
    available_at     BIGINT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    payload          TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    generation       INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
) WITH (fillfactor = 70);
-- claim reads due items (available_at <= now) in (priority, available_at) order. PostgreSQL
-- has no skip scan, so two indexes let the planner pick by how many items are due: few due
-- (the usual case, with sleeps of days waiting in the queue) -> a range scan of
-- queue_by_available and a small sort; most due (a backlog) -> queue_by_due in order, stopping
-- at the claim's LIMIT. queue_by_available also answers next_available_at, stepping over
-- leased items (at most the ones in flight).
CREATE INDEX queue_by_due ON queue (priority, available_at);
CREATE INDEX queue_by_available ON queue (available_at);
CREATE INDEX queue_by_run ON queue (run_id);

CREATE TABLE waits (
    wait_id          TEXT COLLATE "C" PRIMARY KEY,
    kind             TEXT NOT NULL,
    run_id           TEXT COLLATE "C" NOT NULL,
    function_id      TEXT COLLATE "C" NOT NULL,
    event_name       TEXT COLLATE "C" NOT NULL,
    expires_at       BIGINT NOT NULL,
    step_key         TEXT COLLATE "C",
    match_path       TEXT COLLATE "C",
    match_value      TEXT COLLATE "C",
    expression       TEXT,
    trigger_event_id TEXT,
    step_id          TEXT,
    -- NULL step_keys (cancel waits) never collide; this also serves lookups by run_id.
    UNIQUE (run_id, step_key)
);
-- keyed waits: one probe of (event_name, match_path, match_value); unkeyed ones: match_path
-- IS NULL, which a b-tree also answers.
CREATE INDEX waits_by_match ON waits (event_name, match_path, match_value, wait_id);

CREATE TABLE cron_ticks (
    function_id TEXT COLLATE "C" NOT NULL,
    tick_at     BIGINT NOT NULL,
    PRIMARY KEY (function_id, tick_at)
);

-- stepwell schema, version 1 (SQLite).
--
-- The data model
-- --------------
-- apps            an app: a set of functions synced together (url, sdk, checksum of the sync).
-- functions       one row per function id: its Inngest FunctionConfig JSON and a `version` that
--                 moves only when the config's checksum changes. Runs record the version they
--                 started with.
-- events          accepted events, immutable. `event_id` is a ULID, so ordering by it is
--                 ordering by arrival; listing by name walks (name, event_id).
-- event_dedupe    user-given event ids (`dedupe_key`) held for a TTL: while held, a second event
--                 with the same key is answered with the first event's id and not stored.
-- runs            one execution of a function for one event, batch or cron tick. `event_ids`
--                 keeps the trigger events in order (JSON); `run_events` indexes them so the
--                 runs an event started are found without scanning.
-- run_events      (event_id, run_id) for every trigger event of every run.
-- memo            the step log: one row per (run_id, step_key), first write wins. `seq` is the
--                 completion order within the run (1 + the run's highest seq at insert time).
--                 `value` is the protocol's memo value as JSON.
-- queue           durable scheduled work. `item_id` is deterministic (continue:<run_id>, ...), so
--                 enqueueing the same work twice bumps `generation` instead of adding a row; a
--                 lease (`lease_owner`, `lease_expires_at`) marks an item in flight, and an item
--                 whose lease expired is claimable again by anyone.
-- waits           pending wait_for_event steps and cancel_on conditions. Keyed waits are found
--                 by one probe of (event_name, match_path, match_value); unkeyed ones (free CEL
--                 or none) by (event_name, match_path IS NULL). A run has at most one wait per
--                 step_key; cancel waits have no step_key.
-- cron_ticks      one row per (function_id, tick_at) that fired: the primary key is what makes a
--                 tick fire at most once across every node sharing the database.
-- schema_migrations  one row per applied migration file.
--
-- Conventions: times are epoch milliseconds (INTEGER); JSON is TEXT, with JSON null stored as
-- SQL NULL; ids are TEXT. Column names are the field names of stepwell.store.records. Tables
-- with small rows and a natural composite key are WITHOUT ROWID (one b-tree instead of two).

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
);

CREATE TABLE apps (
    app_id      TEXT PRIMARY KEY,
    url         TEXT,
    sdk         TEXT,
    framework   TEXT,
    checksum    TEXT NOT NULL,
    synced_at   INTEGER NOT NULL,
    error       TEXT
);

CREATE TABLE functions (
    function_id TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX functions_by_app ON functions (app_id, function_id);

CREATE TABLE events (
    event_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    data        TEXT NOT NULL,
    "user"      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    dedupe_key  TEXT,
    source      TEXT NOT NULL
);
CREATE INDEX events_by_name ON events (name, event_id);

CREATE TABLE event_dedupe (
    dedupe_key  TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    function_id      TEXT NOT NULL,
    function_version INTEGER NOT NULL,
    app_id           TEXT NOT NULL,
    status           TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_ids        TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    started_at       INTEGER,
    ended_at         INTEGER,
    output           TEXT,
    error            TEXT,
    parent_run_id    TEXT,
    parent_step_key  TEXT,
    cancel_reason    TEXT
);
-- list_runs walks these newest first; run_id breaks ties so cursors are stable.
CREATE INDEX runs_by_created ON runs (created_at, run_id);
CREATE INDEX runs_by_function ON runs (function_id, created_at, run_id);
CREATE INDEX runs_by_status ON runs (status, created_at, run_id);
CREATE INDEX runs_by_parent ON runs (parent_run_id, parent_step_key)
    WHERE parent_run_id IS NOT NULL;

CREATE TABLE run_events (
    event_id    TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    PRIMARY KEY (event_id, run_id)
) WITHOUT ROWID;

CREATE TABLE memo (
    run_id      TEXT NOT NULL,
    step_key    TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT,
    seq         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, step_key)
);
-- get_memo reads a run in completion order; put_memo reads the run's highest seq.
CREATE INDEX memo_by_run ON memo (run_id, seq);

CREATE TABLE queue (
    item_id          TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    function_id      TEXT NOT NULL,
    available_at     INTEGER NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    payload          TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    generation       INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
-- claim walks due items in (priority, available_at) order. Priorities are few, so the planner
-- can skip-scan this index (one range probe per priority) instead of stepping over every item
-- that is not due yet, such as sleeps of days; the statistics seeded at the end of this file
-- tell it so before the table has grown.
CREATE INDEX queue_by_due ON queue (priority, available_at);
-- next_available_at: the earliest unleased item, one probe.
CREATE INDEX queue_unleased ON queue (available_at) WHERE lease_owner IS NULL;
CREATE INDEX queue_by_run ON queue (run_id);

CREATE TABLE waits (
    wait_id          TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    function_id      TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    expires_at       INTEGER NOT NULL,
    step_key         TEXT,
    match_path       TEXT,
    match_value      TEXT,
    expression       TEXT,
    trigger_event_id TEXT,
    step_id          TEXT,
    -- NULL step_keys (cancel waits) never collide; this also serves lookups by run_id.
    UNIQUE (run_id, step_key)
);
CREATE INDEX waits_by_match ON waits (event_name, match_path, match_value, wait_id);

CREATE TABLE cron_ticks (
    function_id TEXT NOT NULL,
    tick_at     INTEGER NOT NULL,
    PRIMARY KEY (function_id, tick_at)
) WITHOUT ROWID;

-- Planner statistics for the queue as it looks in production: many rows, few priorities, unique
-- ids. SQLite documents writing sqlite_stat1 by hand for this purpose; `ANALYZE sqlite_schema`
-- creates the table first and reloads the statistics after. A later ANALYZE replaces them with
-- measured ones, which lead to the same plans once the queue is large.
ANALYZE sqlite_schema;
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('queue', 'queue_by_due', '1000000 100000 1'),
    ('queue', 'queue_unleased', '1000000 1'),
    ('queue', 'queue_by_run', '1000000 4'),
    ('queue', 'sqlite_autoindex_queue_1', '1000000 1');
ANALYZE sqlite_schema;

-- stepwell schema, version 2 (PostgreSQL): flow control.
--
-- runs.flow_keys      the run's concurrency keys and throttle key, evaluated once on its trigger
--                     event when it was created (JSON {"concurrency": [...], "throttle": ...}).
-- runs.singleton_key  set while a run of a singleton function is not finished; cleared when it
--                     ends, so the index holds live runs only.
-- queue.concurrency_key1/2  the concurrency keys an invocation item holds while leased: the
--                     executing steps of a key are the leased items carrying it.
-- queue.blocked_on    the concurrency key an item waits for; a blocked item is parked (its
--                     available_at moved past any claim) and keeps its place in blocked_at.
-- queue.admitted      1 once a start item passed its throttle: retries do not count again.
-- flow_buckets        GCRA state of throttles and rate limits: the theoretical arrival time.
-- debounces           one pending debounced start per key: the latest event and when it is due.
-- batches             one open batch per key: its events in arrival order.
-- skips               events that started no run of a function, with the reason.

ALTER TABLE runs ADD COLUMN flow_keys TEXT;
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
CREATE INDEX runs_by_singleton ON runs (singleton_key) WHERE singleton_key IS NOT NULL;

-- Items due at the same millisecond are claimed in the order they were created (ids are ULIDs),
-- so runs that flow control holds back are served first in, first out.
DROP INDEX queue_by_due;
CREATE INDEX queue_by_due ON queue (priority, available_at, item_id);

ALTER TABLE queue ADD COLUMN concurrency_key1 TEXT;
ALTER TABLE queue ADD COLUMN concurrency_key2 TEXT;
ALTER TABLE queue ADD COLUMN blocked_on TEXT;
ALTER TABLE queue ADD COLUMN blocked_at BIGINT;
ALTER TABLE queue ADD COLUMN admitted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_by_key1 ON queue (concurrency_key1) WHERE concurrency_key1 IS NOT NULL;
CREATE INDEX queue_by_key2 ON queue (concurrency_key2) WHERE concurrency_key2 IS NOT NULL;
CREATE INDEX queue_blocked ON queue (blocked_on, blocked_at, item_id) WHERE blocked_on IS NOT NULL;

CREATE TABLE flow_buckets (
    bucket_key  TEXT COLLATE "C" PRIMARY KEY,
    tat         BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE debounces (
    debounce_key TEXT COLLATE "C" PRIMARY KEY,
    function_id  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    first_at     BIGINT NOT NULL,
    due_at       BIGINT NOT NULL
);

CREATE TABLE batches (
    batch_key    TEXT COLLATE "C" PRIMARY KEY,
    function_id  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    event_ids    TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE skips (
    event_id     TEXT NOT NULL,
    function_id  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (event_id, function_id)
);
-- retention deletes skip records by age
CREATE INDEX skips_by_created ON skips (created_at);

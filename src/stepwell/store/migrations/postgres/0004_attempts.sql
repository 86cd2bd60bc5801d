-- stepwell schema, version 4: failed attempts.
--
-- attempt_errors  one row per attempt that failed and was retried: the step it was in
--                 (step_key '' for the handler's own code), the attempt number (0 first), the
--                 error and when. The last attempt's error is in the memo or on the run.

CREATE TABLE attempt_errors (
    run_id     TEXT COLLATE "C" NOT NULL,
    step_key   TEXT COLLATE "C" NOT NULL,
    attempt    INTEGER NOT NULL,
    step_id    TEXT,
    error      TEXT NOT NULL,
    failed_at  BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_key, attempt)
);

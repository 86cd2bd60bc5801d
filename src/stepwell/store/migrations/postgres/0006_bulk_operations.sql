-- stepwell schema, version 6 (PostgreSQL): bulk operations.
--
-- bulk_operations  one row per bulk cancel or replay: its `kind`, the `selection` of runs it acts
--                  on (JSON, the fields of RunSelection), its `state` (selecting, running, done,
--                  failed), how many runs matched (`total`, NULL while selecting) and how many
--                  were handled, changed or skipped, the first errors (JSON list). Runs are
--                  handled newest first; `after_run_id` is the last one handled, moved in the
--                  same unit of work that acts on a page of runs, so work resumes after it and
--                  never acts on a run twice. A lease (`lease_owner` the node, `lease_token` new
--                  at every take-over, `lease_expires_at`) lets one node at a time work on it;
--                  an unfinished operation whose lease expired is taken over by any node.

CREATE TABLE bulk_operations (
    job_id            TEXT COLLATE "C" PRIMARY KEY,
    kind              TEXT NOT NULL,
    selection         TEXT NOT NULL,
    state             TEXT NOT NULL,
    total             BIGINT,
    processed         BIGINT NOT NULL,
    changed           BIGINT NOT NULL,
    skipped           BIGINT NOT NULL,
    errors            TEXT NOT NULL,
    after_run_id      TEXT,
    lease_owner       TEXT,
    lease_token       TEXT,
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    ended_at          BIGINT
);
-- Nodes look for unfinished operations every few seconds; finished ones stay out of the index.
CREATE INDEX bulk_operations_unfinished ON bulk_operations (lease_expires_at)
    WHERE state IN ('selecting', 'running');

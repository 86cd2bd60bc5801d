-- stepwell schema, version 3: paused functions.
--
-- function_pauses  one row per function that was ever paused or resumed: `paused` 1 while
--                  paused. `changed_at` moves with every change, so nodes sharing the store
--                  notice a pause made elsewhere (it is part of the apps version they check).

CREATE TABLE function_pauses (
    function_id TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL,
    changed_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The runs list filtered by function and status (the dashboard's "failed runs of this
-- function") walks only the matching runs, newest first, even when there are none.
CREATE INDEX runs_by_function_status ON runs (function_id, status, created_at, run_id);

-- stepwell schema, version 5: step inputs.
--
-- memo.input     the arguments a step's body was called with (a JSON array), when the SDK
--                reports them (``step.run(id, fn, *args)``; the TS SDK's ``opts.input``);
--                NULL otherwise.
-- kind 'input'   a memo row that holds no outcome, only the input a step must run with: what
--                "rerun from a step with edited input" seeds. Its value is ``{"input": [...]}``,
--                the protocol's form for it; the step's first outcome replaces the row (every
--                other memo row is first-write-wins).

ALTER TABLE memo ADD COLUMN input TEXT;

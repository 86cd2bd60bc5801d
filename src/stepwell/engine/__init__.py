"""The engine: ingest, dispatch, run transitions, timers, cron, retry and expressions."""

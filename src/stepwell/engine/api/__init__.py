"""HTTP routes on one port: event ingest, REST API v1, health. Routes hold no business logic."""

from __future__ import annotations

from stepwell.engine.api.app import build_app

__all__ = ["build_app"]

"""Storage: the :class:`~stepwell.store.base.Store` seam and its backends, chosen by URL."""

from __future__ import annotations

from stepwell.store.base import Store, Tx


def open_store(url: str) -> Store:
    """The store for ``url``: ``sqlite:///path.db`` (or a plain path), or
    ``postgresql://user@host:port/db`` (``postgres://`` too).

    The one place that branches on the URL.
    """
    store: Store
    if url.startswith(("postgresql://", "postgres://")):
        from stepwell.store.postgres import PostgresStore

        store = PostgresStore(url)
        return store

    from stepwell.store.sqlite import SqliteStore

    if url.startswith("sqlite://"):
        # sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy's convention)
        path = url.removeprefix("sqlite://").removeprefix("/")
        store = SqliteStore(path or ":memory:")
        return store
    if "://" in url:
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:///path/to/file.db "
            "or postgresql://user@host:port/database"
        )
    store = SqliteStore(url)
    return store


__all__ = ["Store", "Tx", "open_store"]

"""Apps and functions: upserts, versions that move only with the checksum, pruning."""

from __future__ import annotations

from typing import Any

from stepwell.store.base import Store
from stepwell.store.records import AppRecord


def app(app_id: str, checksum: str = "c1", **kw: Any) -> AppRecord:
    fields: dict[str, Any] = {"url": None, "sdk": "py", "framework": None, "synced_at": 1}
    fields.update(kw)
    return AppRecord(app_id=app_id, checksum=checksum, **fields)


async def test_upsert_app_inserts_then_replaces(store: Store) -> None:
    await store.run(lambda tx: tx.upsert_app(app("shop")))
    await store.run(lambda tx: tx.upsert_app(app("blog")))
    changed = app("shop", "c2", url="http://localhost:3000/api/inngest", error="boom")
    await store.run(lambda tx: tx.upsert_app(changed))

    assert await store.read(lambda tx: tx.get_app("shop")) == changed
    assert await store.read(lambda tx: tx.get_app("nope")) is None
    assert [a.app_id for a in await store.read(lambda tx: tx.list_apps())] == ["blog", "shop"]


async def test_function_version_moves_only_when_the_checksum_changes(store: Store) -> None:
    config = {"id": "shop-a", "triggers": [{"event": "x"}]}
    first = await store.run(lambda tx: tx.upsert_function("shop-a", "shop", config, "h1", 10))
    same = await store.run(lambda tx: tx.upsert_function("shop-a", "shop", {"other": 1}, "h1", 20))
    changed = {"id": "shop-a", "triggers": [{"event": "y"}]}
    second = await store.run(lambda tx: tx.upsert_function("shop-a", "shop", changed, "h2", 30))

    assert (first.version, first.config, first.updated_at) == (1, config, 10)
    assert same == first  # same checksum: stored record returned unchanged
    assert (second.version, second.config, second.checksum, second.updated_at) == (
        2,
        changed,
        "h2",
        30,
    )
    [stored] = await store.read(lambda tx: tx.list_functions())
    assert stored == second


async def test_list_and_prune_functions_per_app(store: Store) -> None:
    for fid, app_id in (("shop-b", "shop"), ("shop-a", "shop"), ("blog-a", "blog")):
        await store.run(lambda tx, f=fid, a=app_id: tx.upsert_function(f, a, {}, "h", 1))

    shop = await store.read(lambda tx: tx.list_functions("shop"))
    assert [f.function_id for f in shop] == ["shop-a", "shop-b"]
    everything = await store.read(lambda tx: tx.list_functions())
    assert [f.function_id for f in everything] == ["blog-a", "shop-a", "shop-b"]

    assert await store.run(lambda tx: tx.delete_functions_except("shop", ["shop-a"])) == 1
    assert await store.run(lambda tx: tx.delete_functions_except("shop", ["shop-a"])) == 0
    assert await store.run(lambda tx: tx.delete_functions_except("blog", [])) == 1
    remaining = await store.read(lambda tx: tx.list_functions())
    assert [f.function_id for f in remaining] == ["shop-a"]

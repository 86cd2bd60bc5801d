"""Versioned schema migrations: numbered ``.sql`` files per dialect, each applied once, in order.

Files live beside this module, one folder per dialect (``sqlite/0001_init.sql``, ...). The number
before the first underscore is the version. A backend opens a transaction, asks
:func:`apply_pending` to bring the schema up to date inside it, and commits: either every pending
file lands with its ``schema_migrations`` row, or none does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from stepwell.errors import StoreError

_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, in order."""
        return split_statements(self.sql)


def discover(dialect: str) -> list[Migration]:
    """Every migration shipped for ``dialect``, by version.

    Raises:
        StoreError: no migrations for that dialect, or two files share a version.
    """
    folder = resources.files(__package__).joinpath(dialect)
    if not folder.is_dir():
        raise StoreError(f"no migrations for the {dialect!r} dialect")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    if not found:
        raise StoreError(f"no migrations for the {dialect!r} dialect")
    return [found[v] for v in sorted(found)]


def pending(migrations: Sequence[Migration], applied: Iterable[int]) -> list[Migration]:
    """The migrations not yet applied, by version.

    Raises:
        StoreError: the database has a version this code does not know (it is newer).
    """
    done = set(applied)
    known = {m.version for m in migrations}
    unknown = sorted(done - known)
    if unknown:
        raise StoreError(
            f"the database has schema version {unknown[-1]}, newer than this stepwell knows "
            f"({max(known)}); upgrade stepwell or use another database"
        )
    return [m for m in migrations if m.version not in done]


Execute = Callable[[str, Sequence[Any]], object]


def apply_pending(
    execute: Execute, dialect: str, applied: Iterable[int], now: int, placeholder: str = "?"
) -> list[int]:
    """Apply every pending migration through ``execute``, inside the caller's transaction.

    Args:
        execute: runs one statement with parameters (``connection.execute``).
        dialect: the folder of migrations to use.
        applied: versions already recorded in ``schema_migrations`` (empty on a new database).
        now: epoch milliseconds, recorded as ``applied_at``.
        placeholder: the driver's parameter marker; ``$`` numbers them (``$1, $2, ...``).

    Returns:
        The versions applied, in order.
    """
    marks = ", ".join(f"${n}" if placeholder == "$" else placeholder for n in (1, 2, 3))
    record = f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({marks})"
    versions = []
    for migration in pending(discover(dialect), applied):
        for statement in migration.statements():
            execute(statement, ())
        execute(record, (migration.version, migration.name, now))
        versions.append(migration.version)
    return versions


def split_statements(sql: str) -> list[str]:
    """Split a script on the semicolons that end statements.

    Semicolons inside quotes (``'...'``, ``"..."``) and comments (``--``, ``/* */``) do not end
    a statement; comment-only chunks are dropped. Dollar-quoted bodies are not supported.
    """
    statements: list[str] = []
    start = i = 0
    substantive = False
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            i = len(sql) if end < 0 else end + 1
            substantive = True
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
            continue
        if ch == ";":
            if substantive:
                statements.append(sql[start:i].strip())
            start, substantive = i + 1, False
        elif not ch.isspace():
            substantive = True
        i += 1
    if substantive:
        statements.append(sql[start:].strip())
    return statements

"""Apply sql/NNNN_name.sql once each, in order, under an advisory lock, refusing edited files."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every daemon sharing the database.
MIGRATION_LOCK_KEY = 0x7265_6261_6C61_6E63  # "rebalanc"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The database's migration history does not match the files shipped with this version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files in version order (the packaged sql/ folder by default)."""
    root = directory or _packaged_sql()
    found = []
    for path in sorted(root.iterdir()):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version in {root}")
    return found


def _packaged_sql() -> Path:
    """sql/ as installed (rebalancerd.sql), or beside the package in a plain source tree."""
    try:
        return Path(str(resources.files("rebalancerd.sql")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "sql"


async def migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply the pending migrations; returns the names applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {
            r["version"]: (r["name"], r["checksum"])
            for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        }
        _check_history(applied, migrations)
        done = []
        for migration in migrations:
            if migration.version not in applied:
                await _apply(conn, migration)
                done.append(migration.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


def _check_history(applied: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {name} that this version does not know (downgrade?)"
            )
        if migration.checksum != checksum:
            raise MigrationError(f"migration {name} was edited after it was applied")


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.checksum,
        )
    log.info("[Database] Applied migration %s", migration.name)

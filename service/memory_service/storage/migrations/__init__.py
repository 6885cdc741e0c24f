"""Versioned schema migrations (Alembic), applied at start under an advisory lock.

Two chains, each with its own version table:

- `service/`: the service's own tables (keys, history, messages, outbox, jobs, ...), one copy per
  database, versioned in `alembic_version`;
- `collection/`: a memory collection (mem0's pgvector table `COLLECTION_NAME` and our indexes on
  it), versioned per collection in `<collection>_alembic_version`, since an operator may start a
  new collection in the same database (docs/inference.md: changing the embedder).

The first revision of each chain is the schema as release 1.0.0 created it, written
idempotently, so a database made before migrations existed is adopted without losing a row.
Migrations are additive (expand only): a rollback to the previous release keeps the newer schema
and runs on it; a database whose revision this release does not know (a newer release ran) is
left as it is. `memory-service db upgrade|current|history` runs the same code by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, NullPool, create_engine, text

from memory_service.errors import StartupError

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LOCK_ID = 0x6D656D30  # "mem0": one advisory lock serialises every process that migrates


@dataclass(frozen=True, slots=True)
class Chain:
    name: str  # "service" or "collection"
    version_table: str

    @property
    def directory(self) -> Path:
        return HERE / self.name


def chains(collection: str) -> tuple[Chain, Chain]:
    return Chain("service", "alembic_version"), Chain("collection", f"{collection}_alembic_version")


def _config(chain: Chain, connection: Connection | None, collection: str, dims: int | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(chain.directory))
    config.attributes.update(connection=connection, collection=collection, dims=dims, version_table=chain.version_table)
    return config


@contextmanager
def _connection(conninfo: str) -> Iterator[Connection]:
    """A SQLAlchemy connection over psycopg without prepared statements (a transaction pooler
    cannot keep them), in one transaction that holds the advisory lock until it commits."""
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(conninfo, prepare_threshold=None),
        poolclass=NullPool,
    )
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": LOCK_ID})
            yield connection
    finally:
        engine.dispose()


def current_revisions(connection: Connection, collection: str) -> dict[str, str | None]:
    result = {}
    for chain in chains(collection):
        context = MigrationContext.configure(connection, opts={"version_table": chain.version_table})
        result[chain.name] = context.get_current_revision()
    return result


def head_revisions(collection: str) -> dict[str, str | None]:
    return {
        c.name: ScriptDirectory.from_config(_config(c, None, collection, None)).get_current_head()
        for c in chains(collection)
    }


def upgrade(conninfo: str, collection: str, dims: int, check: object = None) -> dict[str, str | None]:
    """Bring both chains to their heads; returns the revisions now current.

    `check(connection)`, when given, runs first under the same lock (the embedding-dimension
    check), so a refused start changes nothing.
    """
    with _connection(conninfo) as connection:
        if callable(check):
            check(connection)
        known = head_revisions(collection)
        for chain in chains(collection):
            config = _config(chain, connection, collection, dims)
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                if "Can't locate revision" not in str(exc):
                    raise StartupError(f"schema migration ({chain.name}) failed: {exc}") from exc
                # A newer release migrated this database; its changes are additive, so this one runs on it.
                log.warning("the %s schema is newer than this release knows (%s); leaving it as it is", chain.name, exc)
        now = current_revisions(connection, collection)
    if now != known:
        log.info("schema revisions %s (this release's heads: %s)", now, known)
    return now


def current(conninfo: str, collection: str) -> dict[str, str | None]:
    with _connection(conninfo) as connection:
        return current_revisions(connection, collection)


def history(collection: str) -> list[tuple[str, str, str | None, str]]:
    """(chain, revision, down revision, message) of every migration this release has, oldest first."""
    rows = []
    for chain in chains(collection):
        script = ScriptDirectory.from_config(_config(chain, None, collection, None))
        for revision in reversed(list(script.walk_revisions())):
            down = (
                revision.down_revision
                if isinstance(revision.down_revision, str | None)
                else ",".join(revision.down_revision)
            )
            rows.append((chain.name, revision.revision, down, revision.doc or ""))
    return rows

"""Alembic environment: migrations run on the connection (and in the transaction, under the
advisory lock) that storage/migrations/__init__.py opened; there is no offline mode."""

from __future__ import annotations

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table=config.attributes["version_table"],
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: always run programmatically by :mod:`cpf_deposit.ledger.migrate`.

The caller hands over an open connection (already in a transaction and holding the
migration lock), so no ``alembic.ini`` and no logging setup are needed.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger migrations with cpf_deposit.ledger.migrate.upgrade()")

context.configure(
    connection=connection, target_metadata=None, render_as_batch=True, transactional_ddl=True
)
with context.begin_transaction():
    context.run_migrations()

"""Migrations build exactly the tables the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cpf_deposit.ledger import open_ledger
from cpf_deposit.ledger.migrate import current_revision, downgrade, head_revision, upgrade
from cpf_deposit.ledger.schema import metadata


def test_migrated_schema_matches_the_tables_in_code(ledger):
    with ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_the_id_key(ledger_url):
    first = open_ledger(url=ledger_url)
    again = open_ledger(url=ledger_url)
    assert first.id_key == again.id_key and len(first.id_key) == 32
    assert current_revision(again.engine) == head_revision()
    first.dispose()
    again.dispose()


def test_downgrade_then_upgrade(tmp_path):
    led = open_ledger(url=f"sqlite:///{tmp_path / 'l.db'}")
    downgrade(led.engine)
    assert "ledger_passage" not in inspect(led.engine).get_table_names()
    upgrade(led.engine)
    assert current_revision(led.engine) == head_revision()


@pytest.mark.parametrize("table", ["ledger_passage", "ledger_file", "ledger_sending"])
def test_tables_exist(ledger, table):
    assert inspect(ledger.engine).has_table(table)

"""Ledger fixtures: every ledger test runs on SQLite and on PostgreSQL.

PostgreSQL: a throwaway database per test session on the local server
(``$CPF_TEST_PG``, default ``postgresql+psycopg2://postgres@127.0.0.1:5432``), emptied
between tests and dropped at the end. The server must be running: a missing server
is an error, not a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text

from cpf_deposit.config import load_config
from cpf_deposit.ledger import open_ledger
from tests.ledger_helpers import write_config

PG_SERVER = os.environ.get("CPF_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
TABLES = ("ledger_sending", "ledger_passage", "ledger_file", "ledger_run")


@pytest.fixture(scope="session")
def pg_url():
    name = f"cpf_ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    open_ledger(url=url).dispose()  # migrate once
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite ledger, copied for each test (same key, fresh rows)."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    open_ledger(url=f"sqlite:///{path}").dispose()  # the last close folds the WAL in
    assert not path.with_name("ledger.db-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    engine.dispose()
    return url


@pytest.fixture
def ledger(ledger_url):
    led = open_ledger(url=ledger_url)
    yield led
    led.dispose()


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path / "var")


@pytest.fixture
def config(config_path):
    return load_config(config_path)


@pytest.fixture
def sqlite_ledger(config, sqlite_template):
    """The config's own (default) SQLite ledger, so commands and apps that open the
    ledger from the config see the same rows."""
    from cpf_deposit.ledger.engine import default_sqlite_path

    path = default_sqlite_path(config)
    shutil.copyfile(sqlite_template, path)
    led = open_ledger(url=f"sqlite:///{path}")
    yield led
    led.dispose()

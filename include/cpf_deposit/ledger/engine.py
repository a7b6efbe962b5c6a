"""Reach the ledger database through an Airflow connection id, or a local SQLite file.

Why every write transaction takes a lock up front: nightly, annual and backfill runs
may overlap, and a run must never decide on rows another run is changing. SQLite
gets ``BEGIN IMMEDIATE`` (one writer at a time, readers unaffected with WAL);
PostgreSQL relies on row locks, unique constraints and conditional updates, plus a
transaction-scoped advisory lock for the rare whole-ledger steps (recovery,
migrations).
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.engine import URL, make_url

from cpf_deposit import errors

log = logging.getLogger(__name__)

DEFAULT_SQLITE_NAME = "ledger.db"
BUSY_TIMEOUT_S = 120


class LedgerError(errors.DataError, RuntimeError):
    """The ledger cannot do what was asked (the message says why, without personal data).

    Terminal: every raise site is a refusal the ledger would repeat (an unknown file, a
    transition from the wrong state, passages already in another file). A database
    that cannot be reached raises sqlalchemy's own errors, which
    :func:`cpf_deposit.errors.is_retryable` judges transient.
    """


class LedgerConfigError(errors.ConfigError, LedgerError):
    """The ledger's connection or database is not one this package can use (terminal)."""


def url_from_conn_id(conn_id: str, fallback: Path) -> URL:
    """SQLAlchemy URL of an Airflow connection; a SQLite file at ``fallback`` if undefined.

    Airflow is imported here, not at module level, so library imports stay fast and a
    fresh clone without any Airflow connection still works.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("connexion %s non définie : registre SQLite local", conn_id)
        return URL.create("sqlite", database=str(fallback))
    kind = (conn.conn_type or "").lower()
    if kind == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise LedgerConfigError(f"connection {conn_id}: a SQLite connection needs a file path")
        return URL.create("sqlite", database=path)
    if kind in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
            query={k: str(v) for k, v in (conn.extra_dejson or {}).items() if k == "sslmode"},
        )
    raise LedgerConfigError(f"connection {conn_id}: type {kind!r} not supported (sqlite, postgres)")


def make_engine(url: str | URL) -> Engine:
    """An engine with the locking behaviour described in the module docstring.

    ``hide_parameters``: a database error must not carry source keys into the logs.
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            private_sqlite_files(Path(url.database))
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    raise LedgerConfigError(f"ledger backend {url.get_backend_name()!r} not supported")


SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_files(path: Path) -> None:
    """The SQLite ledger holds the idTechnique key: created 0600 (its folder 0700 when
    created here) before SQLite opens it, so the journal files SQLite creates beside
    it take the same mode; an older, wider ledger and its journals are narrowed to
    0600. A symbolic link in place of the ledger is refused."""
    from cpf_deposit.files import ensure_private_file

    ensure_private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.is_file() and not companion.is_symlink():
            ensure_private_file(companion)


@dataclass
class Ledger:
    """An open, migrated ledger and the key its idTechnique and hashes are made with."""

    engine: Engine
    id_key: bytes
    id_scheme: str = "T1"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextlib.contextmanager
    def begin(self, exclusive: bool = False) -> Iterator[Connection]:
        """A write transaction; ``exclusive`` also serialises against other whole-ledger steps."""
        with self.engine.begin() as conn:
            if exclusive and self.is_postgres:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
            yield conn

    def analyze(self, table: str) -> None:
        """Refresh the planner's statistics of ``table`` after a bulk load (PostgreSQL).

        Why not wait for autovacuum: the next step of the same run (recording files
        of 200 000 passages) follows within seconds, and plans made on the counts of
        an empty table probe an index a million times instead of hashing once.
        """
        if self.is_postgres:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {table}")

    def dispose(self) -> None:
        self.engine.dispose()


LOCK_KEY = zlib.crc32(b"cpf_deposit.ledger")


def default_sqlite_path(config) -> Path:
    return Path(config.paths.base_dir) / DEFAULT_SQLITE_NAME


def open_ledger(config=None, *, url: str | URL | None = None, migrate: bool = True) -> Ledger:
    """Open (and by default migrate) the ledger named by ``url`` or by the config's conn id."""
    if url is None:
        if config is None:
            raise LedgerError("open_ledger needs a config or a url")
        url = url_from_conn_id(config.ledger_conn_id, default_sqlite_path(config))
    engine = make_engine(url)
    if migrate:
        from cpf_deposit.ledger.migrate import upgrade

        upgrade(engine)
    return ledger_from_engine(engine)


def ledger_from_engine(engine: Engine) -> Ledger:
    from cpf_deposit.ledger.schema import ledger_meta

    with engine.connect() as conn:
        meta = dict(conn.execute(select(ledger_meta.c.name, ledger_meta.c.value)).all())
    if "id_key" not in meta:
        raise LedgerConfigError("the ledger has no idTechnique key: is it migrated?")
    return Ledger(engine, bytes.fromhex(meta["id_key"]), meta.get("id_scheme", "T1"))

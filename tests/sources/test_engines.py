"""The Apogée query gives the same passages on SQLite and on PostgreSQL (same data)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid

import psycopg
import pyarrow.parquet as pq
import pytest

from cpf_deposit.demo.build import apogee_ddl, write_demo
from cpf_deposit.sources.extract import extract

PG = "host=127.0.0.1 port=5432 user=postgres"
WINDOW = (dt.date(2020, 1, 1), dt.date(2026, 12, 31))


@pytest.fixture
def demo_twins(tmp_path, monkeypatch):
    """The demo database in SQLite and a copy in a throwaway PostgreSQL database."""
    files = write_demo(tmp_path / "demo", 1500, seed=3)
    name = f"cpf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        src = sqlite3.connect(files.apogee)
        with psycopg.connect(f"{PG} dbname={name}") as pg:
            for stmt in apogee_ddl("postgres"):
                pg.execute(stmt)
            tables = [
                r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                cur = src.execute(f"SELECT * FROM {table}")
                cols = [d[0] for d in cur.description]
                with pg.cursor() as pc:
                    pc.executemany(
                        f"INSERT INTO {table} ({', '.join(cols)}) "
                        f"VALUES ({', '.join(['%s'] * len(cols))})",
                        cur.fetchall(),
                    )
        src.close()
        monkeypatch.setenv("AIRFLOW_CONN_TWIN_SQLITE", f"sqlite://{files.apogee}")
        monkeypatch.setenv("AIRFLOW_CONN_TWIN_PG", f"postgresql://postgres@127.0.0.1:5432/{name}")
        yield "twin_sqlite", "twin_pg"
    finally:
        with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_sqlite_and_postgresql_give_identical_passages(tmp_path, demo_twins):
    tables, reports = [], []
    for conn_id in demo_twins:
        out = tmp_path / f"{conn_id}.parquet"
        reports.append(extract("apogee", conn_id, *WINDOW, out, id_key=bytes(32)))
        tables.append(pq.read_table(out).sort_by("source_record_key").to_pylist())
    lite, pg = tables
    assert len(lite) > 1000
    assert lite == pg
    assert reports[0].by_code == reports[1].by_code
    issues = [r.issues_path.read_text(encoding="utf-8").splitlines() for r in reports]
    assert sorted(issues[0]) == sorted(issues[1])
    raw = [pq.read_table(r.canonical_path) for r in reports]
    assert raw[0].num_rows == reports[0].rows > len(lite)  # every row read, kept or not
    assert raw[0].schema.field("birth_date").type == "date32[day]"
    key = "source_record_key"
    assert raw[0].sort_by(key).to_pylist() == raw[1].sort_by(key).to_pylist()

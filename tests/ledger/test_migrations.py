"""Migrations build exactly the tables the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, select, text

from cpf_deposit.ledger import mark_accepted, open_ledger, passage_counts
from cpf_deposit.ledger.engine import ledger_from_engine, make_engine
from cpf_deposit.ledger.migrate import current_revision, downgrade, head_revision, upgrade
from cpf_deposit.ledger.schema import metadata
from tests.ledger_fixtures import PG_SERVER


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


# --------------------------------------------------------------------------------------
# 0002: files carry the STAGED and DEPOSITED steps
# --------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 7, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database with no ledger yet, to migrate step by step."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    name = f"cpf_ledger_mig_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_SERVER}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _old_passage(tid, status, **values):
    row = dict(
        technical_id=tid,
        source_system="APOGEE",
        source_record_key=f"key-{tid}",
        certification_type="RNCP",
        certification_code="RNCP24514",
        action="CREATION",
        status=status,
        created_at=T0,
        updated_at=T0,
    )
    return row | values


def _old_file(id_flux, status, run_id, passages):
    return dict(
        id_flux=id_flux,
        file_name=f"{id_flux}.xml",
        sha256="0" * 64,
        size=1,
        passages=passages,
        certifications="{}",
        horodatage="2026-07-01T04:00:00+02:00",
        run_id=run_id,
        status=status,
        built_at=T0,
        updated_at=T0,
    )


# Ledger rows as version 0001 wrote them, in every state a passage could be in.
OLD_FILES = [
    _old_file("F0", "PROCESSED", "r0", 2),
    _old_file("F1", "STAGED", "r1", 2),
    _old_file("F2", "DEPOSITED", "r1", 1),
]
OLD = [
    _old_passage("NEW", "STAGED", sent_hash="h-new", id_flux="F1"),
    _old_passage(
        "AGAIN",
        "STAGED",
        sent_hash="h-fixed",
        id_flux="F1",
        prev_status="REJECTED",
        prev_hash="h-bad",
        prev_flux="F0",
        prev_reason="nom inconnu",
    ),
    _old_passage("DEP", "DEPOSITED", sent_hash="h-dep", id_flux="F2"),
    _old_passage("RUN", "BUILT", claim_run="r9", claim_hash="h-run", claimed_at=T0),
    _old_passage(  # a rejected one claimed again, its file not written yet
        "FIXING",
        "BUILT",
        sent_hash="h-bad2",
        id_flux="F0",
        reason="motif",
        claim_run="r9",
        claim_hash="h-fix2",
        claimed_at=T0,
        prev_status="REJECTED",
        prev_hash="h-bad2",
        prev_flux="F0",
        prev_reason="motif",
    ),
    _old_passage("OK", "ACCEPTED", sent_hash="h-ok", id_flux="F0"),
]
OLD_SENDINGS = [
    dict(id_flux=f, technical_id=t, data_hash=h, status=s, built_at=T0)
    for f, t, h, s in [
        ("F0", "AGAIN", "h-bad", "REJECTED"),
        ("F0", "OK", "h-ok", "ACCEPTED"),
        ("F1", "NEW", "h-new", "PENDING"),
        ("F1", "AGAIN", "h-fixed", "PENDING"),
        ("F2", "DEP", "h-dep", "PENDING"),
    ]
]
COLUMNS = ("status", "sent_hash", "id_flux", "reason", "claim_run", "claim_hash", "prev_status")
OLD_COLUMNS = (*COLUMNS, "prev_hash", "prev_flux", "prev_reason")


def _rows(engine, table_name, key, columns):
    table = Table(table_name, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    return {r[key]: tuple(r[c] for c in columns) for r in rows}


def _ledger_0001(url, passages, sendings):
    """A ledger at revision 0001 holding these rows (as 0001 wrote them)."""
    engine = make_engine(url)
    upgrade(engine, "0001")
    meta = MetaData()
    meta.reflect(engine, only=["ledger_file", "ledger_passage", "ledger_sending"])
    passage = meta.tables["ledger_passage"]
    with engine.begin() as conn:
        conn.execute(insert(meta.tables["ledger_file"]), OLD_FILES)
        conn.execute(
            insert(passage), [{c.name: r.get(c.name) for c in passage.c} for r in passages]
        )
        if sendings:
            conn.execute(insert(meta.tables["ledger_sending"]), sendings)
    return engine


def test_0002_moves_the_file_steps_off_the_passages_and_back(empty_url):
    engine = _ledger_0001(empty_url, OLD, OLD_SENDINGS)
    before = _rows(engine, "ledger_passage", "technical_id", OLD_COLUMNS)

    upgrade(engine)
    led = ledger_from_engine(engine)
    assert passage_counts(led) == {"STAGED": 2, "DEPOSITED": 1, "BUILT": 2, "ACCEPTED": 1}
    assert _rows(engine, "ledger_passage", "technical_id", COLUMNS) == {
        # a claim keeps the settled columns: here, the rejection being corrected
        "AGAIN": ("CLAIMED", "h-bad", "F0", "nom inconnu", "r1", "h-fixed", "REJECTED"),
        "NEW": ("CLAIMED", None, None, None, "r1", "h-new", None),
        "DEP": ("CLAIMED", None, None, None, "r1", "h-dep", None),
        "RUN": ("CLAIMED", None, None, None, "r9", "h-run", None),
        "FIXING": ("CLAIMED", "h-bad2", "F0", "motif", "r9", "h-fix2", "REJECTED"),
        "OK": ("ACCEPTED", "h-ok", "F0", None, None, None, None),
    }
    # the migrated ledger goes on: the CDC's answer for F1 settles its two passages
    mark_accepted(led, "F1", ["NEW", "AGAIN"], at=T0)
    after = _rows(engine, "ledger_passage", "technical_id", ("status", "sent_hash", "id_flux"))
    assert after["AGAIN"] == ("ACCEPTED", "h-fixed", "F1")
    assert after["NEW"] == ("ACCEPTED", "h-new", "F1")

    downgrade(engine, "0001")
    back = _rows(engine, "ledger_passage", "technical_id", OLD_COLUMNS)
    for tid in ("DEP", "RUN", "FIXING", "OK"):  # AGAIN and NEW were settled meanwhile
        assert back[tid] == before[tid], tid
    engine.dispose()


def test_0002_refuses_a_ledger_it_cannot_convert_and_changes_nothing(empty_url):
    stray = _old_passage("STRAY", "STAGED", sent_hash="h", id_flux="F1")  # no pending sending
    engine = _ledger_0001(empty_url, [stray], [])

    with pytest.raises(RuntimeError, match="1 staged or deposited passages in no file"):
        upgrade(engine)
    assert current_revision(engine) == "0001"
    assert _rows(engine, "ledger_passage", "technical_id", ("status",)) == {"STRAY": ("STAGED",)}
    engine.dispose()

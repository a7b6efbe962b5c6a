"""A source database with a hostile value in every text column runs to the end.

Each corrupted person is held back (quarantined with its source key and field, or
reported by the extraction), every other holder is staged as on the pristine copy,
and no corrupted value reaches a log line or the terminal."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sqlite3

import pytest

from cpf_deposit.config import load_config
from cpf_deposit.demo.build import write_demo
from cpf_deposit.pipeline import Window, run_pipeline
from tests.test_pipeline import _ledger_keys

FULL = Window(dt.date(2021, 7, 1), dt.date(2026, 12, 1))
TODAY = dt.date(2026, 11, 30)
# Source-side identifiers the extraction joins on are left alone: a control character
# there changes which rows exist, not what a row holds.
KEYS = {"cod_etu", "cod_ind", "cod_nne_ind", "cod_cle_nne_ind"}
VALUES = ["\x01", "\x00", "\x1f", "\ufffe", '=HYPERLINK("x")', "X" * 10_000]


def _text_columns(conn) -> list[str]:
    return [
        r[1]
        for r in conn.execute("pragma table_info(individu)")
        if "TEXT" in r[2].upper() and r[1] not in KEYS
    ]


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    clean = write_demo(base / "clean", 400, seed=21).apogee
    hostile = base / "hostile.sqlite"
    shutil.copy(clean, hostile)
    conn = sqlite3.connect(hostile)
    ids = [r[0] for r in conn.execute("select cod_ind from individu order by cod_ind")]
    touched: dict[int, str] = {}
    columns = _text_columns(conn)
    for i, column in enumerate(columns):
        cod_ind = ids[i % len(ids)]
        value = VALUES[i % len(VALUES)]
        conn.execute(
            f"update individu set {column} = coalesce({column}, '') || ? where cod_ind = ?",
            (value, cod_ind),
        )
        touched[cod_ind] = column
    conn.commit()
    conn.close()
    return clean, hostile, touched


def _run(db, home, monkeypatch):
    monkeypatch.setenv("CPF_DEPOSIT_HOME", str(home))
    monkeypatch.delenv("CPF_DEPOSIT_CONFIG", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{db}")
    config = load_config()
    out = run_pipeline(config, "apogee", FULL, today=TODAY)
    return config, out


def test_hostile_values_hold_back_their_record_only(databases, tmp_path, monkeypatch, caplog):
    clean, hostile, touched = databases
    caplog.set_level(logging.INFO)
    clean_config, _ = _run(clean, tmp_path / "clean", monkeypatch)
    sent_clean = _ledger_keys(clean_config)
    config, out = _run(hostile, tmp_path / "hostile", monkeypatch)
    sent = _ledger_keys(config)
    assert out["stage"]["staged"], "the clean records are staged"
    person_of = lambda key: int(key.split("-")[0])  # noqa: E731  (source keys start with cod_ind)
    assert {k for k in sent_clean if person_of(k) not in touched} <= sent
    # a corrupted value never lets a held-back holder through; a corrupted NIR may only
    # silence the NIR cross-check (the NIR is then unreadable, as if absent)
    extra = {k: touched[person_of(k)] for k in sent - sent_clean if person_of(k) in touched}
    assert set(extra.values()) <= {"cod_nni_etu", "cod_cle_nni_etu"}, extra
    for f in out["stage"]["staged"]:
        xml = (config.paths.outbox / f["file_name"]).read_text(encoding="utf-8")
        assert "HYPERLINK" not in xml and "X" * 100 not in xml
    for value in VALUES[:4]:
        assert value not in caplog.text
    assert "X" * 100 not in caplog.text

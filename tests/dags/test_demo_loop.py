"""The whole loop through the real DAGs, as `make demo` runs it, on a small demo."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import resetdb

    resetdb()


def test_demo_loop_reconciles_through_the_dags(airflow_db, tmp_path, monkeypatch, capsys):
    from cpf_deposit.demo.loop import print_summary, run_demo

    monkeypatch.chdir(tmp_path)
    out = run_demo(tmp_path, DAGS, graduates=900, today=dt.date(2024, 11, 30))
    print_summary(out)
    # Academic years 2020-2021 to 2023-2024, one deposited file at least each.
    assert len(out["flux"]) >= 4
    assert out["processed"] > 500
    assert 0.85 < out["rate"] < 1.0, "the gate leaves only what it cannot see"
    assert Path(out["worklist"]).is_file() and Path(out["report"]).is_file()
    assert list((tmp_path / "var" / "quarantine").glob("*/quarantaine.xlsx"))
    assert "demo: reconciliation rate" in capsys.readouterr().out

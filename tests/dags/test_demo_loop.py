"""`make demo` end to end: a real Airflow (LocalExecutor on SQLite) under a temporary
working folder, driven through its REST API; the newest deposit form stays open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpf_deposit.demo.stack import RestClient

DAGS = Path(__file__).resolve().parents[2] / "dags"

pytestmark = pytest.mark.slow


def test_demo_runs_the_loop_through_airflow_and_leaves_the_newest_form_open(
    tmp_path, monkeypatch, capsys
):
    from cpf_deposit.demo.loop import ANNUAL, FORM, print_summary, run_demo

    monkeypatch.chdir(tmp_path)
    out = run_demo(tmp_path, DAGS, graduates=400)
    print_summary(out)
    # Academic years 2020-2021 to the last ended one: every form but the newest answered.
    assert len(out["flux"]) >= 4
    assert out["processed"] > 200
    assert 0.85 < out["rate"] < 1.0, "the gate leaves only what it cannot see"
    assert Path(out["worklist"]).is_file() and Path(out["report"]).is_file()
    assert list((tmp_path / "var" / "quarantine").glob("*/quarantaine.xlsx"))
    printed = capsys.readouterr().out
    assert "demo: reconciliation rate" in printed and "mot de passe" in printed

    # What `make airflow` then shows: the same metadata, one form waiting, real runs.
    from cpf_deposit.demo.stack import AirflowStack

    home = tmp_path / "var" / "airflow"
    passwords = json.loads((home / "simple_auth_manager_passwords.json").read_text())
    env = {"CPF_DEPOSIT_HOME": str(tmp_path)}
    with AirflowStack(home, DAGS.parent, env=env, passwords=passwords) as stack:
        api = RestClient(stack.base_url, "admin", passwords["admin"])
        forms = api.pending_actions()
        assert [f["task_instance"]["dag_run_id"] for f in forms] == [out["pending_form"]]
        assert forms[0]["task_instance"]["dag_id"] == FORM
        runs = api.dag_runs(ANNUAL)
        assert runs and all(r["state"] == "success" for r in runs)
        assert all(0 < r["duration"] < 3600 for r in runs), "durations are real"

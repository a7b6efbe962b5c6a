"""The deposit DAG run for real with ``dag.test()`` on the demo database."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from cpf_deposit.demo.build import write_demo

REPO_DAGS = "cpf_deposit_apogee_annual"


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import resetdb

    resetdb()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), 600, seed=4).apogee


@pytest.fixture
def env(demo_db, isolated_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{demo_db}")
    from cpf_deposit.config import load_config

    return load_config()


def _dag(dag_id):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).dags[dag_id]


def test_annual_run_stages_the_academic_year_and_waits_for_the_deposit(airflow_db, env):
    dag = _dag(REPO_DAGS)
    dr = dag.test(
        logical_date=pendulum.datetime(2024, 10, 1, 3, tz="Europe/Paris"),
        mark_success_pattern="await_deposit|record_deposit",
    )
    assert dr.state == "success"
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["stage"] == "success" and states["finish"] == "success"
    staged = sorted(env.paths.outbox.glob("CPF_*.xml"))
    assert staged, "the academic year 2023-2024 has graduates to send"
    assert not list((env.paths.work / "runs").glob("*")), "work folder removed"

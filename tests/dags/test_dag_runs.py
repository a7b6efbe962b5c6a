"""The deposit DAG's tasks run in-process with ``dag.test()`` on the demo database.

A unit test of the wiring (XComs, mapping, trigger rules) up to ``finish``; the deposit
form and everything under a real scheduler and Celery workers is proven by
``tests/system/test_real_stack.py``. No task is marked success by hand."""

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


def test_a_dry_run_builds_and_validates_each_file_in_its_own_task(airflow_db, env):
    """A dry run stages nothing: the whole deposit DAG runs here, in-process."""
    dag = _dag(REPO_DAGS)
    for t in dag.tasks:  # a failure shows at once, not after the retry delay
        t.retries = 0
    dr = dag.test(
        logical_date=pendulum.datetime(2024, 10, 1, 3, tz="Europe/Paris"),
        run_conf={"dry_run": True},
    )
    assert dr.state == "success"
    tis = dr.get_task_instances()
    states = {ti.task_id: ti.state for ti in tis}
    assert states["stage"] == "success" and states["finish"] == "success"
    validated = [ti for ti in tis if ti.task_id == "validate"]
    assert validated and all(ti.state == "success" for ti in validated)
    names = {ti.rendered_map_index for ti in validated}
    assert all(n.startswith("CPF_0") and n.endswith(".xml") for n in names), names
    assert not list(env.paths.outbox.glob("CPF_*.xml")), "a dry run stages nothing"
    assert not list((env.paths.work / "runs").glob("*")), "work folder removed"

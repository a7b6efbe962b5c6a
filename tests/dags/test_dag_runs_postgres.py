"""The deposit DAG once more, with Airflow's metadata in PostgreSQL (as in compose).

Airflow binds its metadata database when first imported, so this run happens in a
child process with its own AIRFLOW_HOME and SQL_ALCHEMY_CONN.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from cpf_deposit.demo.build import write_demo

REPO = Path(__file__).resolve().parents[2]
PG = "host=127.0.0.1 port=5432 user=postgres"

CHILD = """
import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.db import resetdb
resetdb()
dag = DagBag(dag_folder="{dags}").dags["cpf_deposit_apogee_annual"]
dr = dag.test(
    logical_date=pendulum.datetime(2024, 10, 1, 3, tz="Europe/Paris"),
    mark_success_pattern="await_deposit|record_deposit",
)
states = {{ti.task_id: ti.state for ti in dr.get_task_instances()}}
print("RESULT", dr.state, states["stage"], states["finish"])
"""


@pytest.fixture
def metadata_db():
    name = f"cpf_airflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(f"{PG} dbname=test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_annual_run_with_postgresql_metadata(metadata_db, tmp_path):
    demo = write_demo(tmp_path / "demo", 400, seed=8)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "CPF_DEPOSIT_HOME": str(tmp_path),
        "AIRFLOW_CONN_APOGEE_DB": f"sqlite://{demo.apogee}",
    }
    env.pop("CPF_DEPOSIT_CONFIG", None)
    code = CHILD.format(dags=REPO / "dags")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")]
    assert result == ["RESULT success success success"], out.stderr[-3000:]
    assert list((tmp_path / "var" / "outbox").glob("CPF_*.xml"))

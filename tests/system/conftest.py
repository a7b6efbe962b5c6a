"""One real Airflow stack for the whole session: CeleryExecutor, PostgreSQL, Redis.

The stack (:class:`cpf_deposit.demo.stack.AirflowStack`) runs this repository's
``dags/`` and ``plugins/`` with its own Airflow home under pytest's tmp folder, a
throwaway PostgreSQL metadata database and a throwaway PostgreSQL ledger
(``AIRFLOW_CONN_CPF_LEDGER``) on the local server, Redis database
:data:`REDIS_DB` as the Celery broker (flushed before and after), and a small fresh
demo Apogée database (``AIRFLOW_CONN_APOGEE_DB``). Everything is dropped or stopped
at the end. The servers must be running (``make services``): a missing one is an
error, never a skip.

The tests of ``test_real_stack.py`` share what they do (runs, deposited files)
through :class:`Scenario`, in file order (``--dist loadfile`` keeps them on one xdist
worker, hence one stack; split across workers, each worker starts its own).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from cpf_deposit.demo.stack import AirflowStack, RestClient

REPO = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("CPF_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# one Redis database per xdist worker (each starts its own stack): 10, 11, ...
REDIS_DB = min(10 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0), 15)
GRADUATES = 300
SEED = 2021


@dataclass
class Scenario:
    """The live stack and what the tests did with it, shared in file order."""

    stack: AirflowStack
    admin: RestClient
    viewer: RestClient
    cpf_home: Path
    demo: object  # cpf_deposit.demo.build.DemoFiles
    ledger_url: str
    runs: dict[str, list[str]] = field(default_factory=dict)  # dag_id -> run ids seen
    deposited: list[str] = field(default_factory=list)  # file names recorded as deposited
    done: set[str] = field(default_factory=set)  # the steps that passed

    def config(self):
        """The institution config the stack's tasks see (example config, our home)."""
        from cpf_deposit.config import load_config

        previous = os.environ.get("CPF_DEPOSIT_HOME")
        os.environ["CPF_DEPOSIT_HOME"] = str(self.cpf_home)
        try:
            return load_config()
        finally:
            if previous is None:
                os.environ.pop("CPF_DEPOSIT_HOME", None)
            else:
                os.environ["CPF_DEPOSIT_HOME"] = previous

    def ledger(self):
        from cpf_deposit.ledger import open_ledger

        return open_ledger(url=self.ledger_url, migrate=False)

    def remember(self, dag_id: str, run_id: str) -> None:
        self.runs.setdefault(dag_id, [])
        if run_id not in self.runs[dag_id]:
            self.runs[dag_id].append(run_id)


def _redis_flush() -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise RuntimeError(
            f"Redis is not answering on {REDIS_HOST}:{REDIS_PORT}: run `make services`"
        ) from exc
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_databases():
    """A factory of throwaway PostgreSQL databases, all dropped at the end."""
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def scenario(tmp_path_factory, pg_databases):
    from cpf_deposit.demo.build import write_demo

    root = tmp_path_factory.mktemp("real-stack")
    cpf_home = root / "cpf"
    cpf_home.mkdir()
    demo = write_demo(root / "demo", GRADUATES, SEED)
    metadata = pg_databases("cpf_airflow_meta")
    ledger = pg_databases("cpf_ledger_stack")
    _redis_flush()
    os.environ.pop("CPF_DEPOSIT_CONFIG", None)  # the tasks and the test read the example
    server = PG_SERVER.replace("postgresql+psycopg2://", "")
    stack = AirflowStack(
        root / "airflow",
        REPO,
        executor="CeleryExecutor",
        sql_alchemy_conn=f"{PG_SERVER}/{metadata}",
        broker_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        env={
            "CPF_DEPOSIT_HOME": str(cpf_home),
            "AIRFLOW_CONN_APOGEE_DB": f"sqlite://{demo.apogee}",
            "AIRFLOW_CONN_CPF_LEDGER": f"postgresql://{server}/{ledger}",
        },
        start_timeout=300,
    )
    stack.start()
    try:
        yield Scenario(
            stack=stack,
            admin=stack.client("admin"),
            viewer=stack.client("viewer"),
            cpf_home=cpf_home,
            demo=demo,
            ledger_url=f"{PG_SERVER}/{ledger}",
        )
    finally:
        try:
            stack.stop()
        finally:
            _redis_flush()

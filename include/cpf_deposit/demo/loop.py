"""The one-command demo: the whole loop through the real DAGs, on the embedded default.

demo Apogée database → annual deposit DAG for every academic year since 2020-2021
(``dag.test()``, as the catch-up would run them) → the deposit recorded as the
human-in-the-loop answer would → the CDC simulator → the receipts DAG → the
reconciliation rate, and where everything is.

Everything lives under the working folder (``var/`` by default): the demo database,
the SQLite ledger, the Airflow home (SQLite metadata, so ``make airflow`` shows the
same runs), the outbox, inbox, archive, quarantine and reports. Airflow is imported
inside the functions only.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

GRADUATES = 5000
SEED = 2021
FIRST_YEAR = 2020  # academic year 2020-2021: awards from 2021-07-01


def prepare_environment(home: Path, dags: Path) -> dict[str, Path]:
    """Environment of the demo: working folders, Airflow home, connections."""
    home = home.resolve()
    os.environ["CPF_DEPOSIT_HOME"] = str(home)
    os.environ.pop("CPF_DEPOSIT_CONFIG", None)
    airflow_home = home / "var" / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW_HOME", str(airflow_home))
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags.resolve())
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    demo = home / "var" / "demo"
    os.environ["AIRFLOW_CONN_APOGEE_DB"] = f"sqlite://{demo / 'apogee.sqlite'}"
    return {"home": home, "airflow_home": airflow_home, "demo": demo}


def run_demo(home: Path, dags: Path, graduates: int = GRADUATES, today: dt.date | None = None):
    env = prepare_environment(home, dags)
    today = today or dt.date.today()

    from cpf_deposit.config import load_config
    from cpf_deposit.demo.build import write_demo

    config = load_config()
    if not (env["demo"] / "apogee.sqlite").exists():
        files = write_demo(env["demo"], graduates, SEED)
        print(f"Base Apogée de démonstration : {files.persons} personnes ({files.apogee})")

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    initdb()
    bag = DagBag(dag_folder=str(dags.resolve()))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    annual = bag.dags["cpf_deposit_apogee_annual"]
    last = today.year - 1 if today.month >= 10 else today.year - 2
    for year in range(FIRST_YEAR, last + 1):
        logical = dt.datetime(year + 1, 10, 1, 3, 0, tzinfo=config.tz)
        run = annual.test(logical_date=logical, mark_success_pattern="await_deposit|record_deposit")
        print(f"Dépôt {year}-{year + 1} : run {run.run_id} {run.state}")
        if run.state != "success":
            raise RuntimeError(f"the deposit run of {year}-{year + 1} failed")

    deposited = record_pending_deposits(config)
    print(f"Dépôts enregistrés : {len(deposited)} fichier(s)")
    simulate_cdc(config, deposited)
    receipts = bag.dags["cpf_receipts"].test()
    if receipts.state != "success":
        raise RuntimeError("the receipts run failed")
    return summary(config)


def record_pending_deposits(config) -> list[Path]:
    """What the person answering *await_deposit* does: record every staged file."""
    from cpf_deposit.orchestration import ledger_session
    from cpf_deposit.staging import pending_deposit, record_deposit

    with ledger_session(config) as ledger:
        done = [
            record_deposit(ledger, config, rec.file_name, "Démonstration").file_name
            for rec in pending_deposit(ledger)
        ]
    return [p for p in (_archived(config, name) for name in done) if p is not None]


def _archived(config, file_name: str) -> Path | None:
    path = Path(config.paths.archive) / file_name
    return path if path.is_file() else None


def simulate_cdc(config, files: list[Path]) -> None:
    from cpf_deposit.simulator.cdc import CdcState, CivilRegister, simulate

    register = CivilRegister.from_sqlite(Path(config.paths.base_dir) / "demo" / "register.sqlite")
    state = CdcState(Path(config.paths.base_dir) / "cdc-simulator" / "state.sqlite")
    try:
        for flux in files:
            o = simulate(flux, register, Path(config.paths.inbox), state, xsd_path=config.xsd_path)
            print(f"CDC (simulée) : {flux.name} : {o.accepted} acceptés, {o.rejected} rejetés")
    finally:
        state.close()


def summary(config) -> dict:
    from cpf_deposit.orchestration import reconcile_and_report

    out = reconcile_and_report(config)
    return {
        **out,
        "flux": sorted(str(p) for p in Path(config.paths.archive).glob("CPF_*.xml")),
        "quarantine": str(config.paths.quarantine),
        "worklist": out["worklist_xlsx"],
    }


def print_summary(out: dict) -> None:
    rate = "n/a" if out["rate"] is None else f"{100 * out['rate']:.2f} %"
    print()
    print(f"Fichiers déposés (archive) : {len(out['flux'])}")
    for f in out["flux"]:
        print(f"  {f}")
    print(f"Quarantaine (contrôle d'identité) : {out['quarantine']}")
    print(f"Liste de travail (scolarité) : {out['worklist']}")
    print(f"Rapport : {out['report']}")
    print(
        f"demo: reconciliation rate {rate} over {out['processed']} processed passages "
        "(CDC threshold 90 %, national average 92.25 %)"
    )

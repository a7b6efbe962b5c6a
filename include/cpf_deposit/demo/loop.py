"""The one-command demo: the whole loop through a real Airflow, on the embedded default.

demo Apogée database → a real Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor on SQLite metadata) → the annual deposit DAG unpaused, so its
catch-up runs every academic year since 2020-2021, one at a time → each run's deposit
form answered through the REST API as the person who deposits would, except the
newest one, left waiting → the CDC simulator → the receipts DAG → the reconciliation
rate, and where everything is.

Nothing is marked success by hand and nothing runs in-process: the tasks run in the
executor's task processes, as in production. Everything lives under the working
folder (``var/`` by default): the demo database, the SQLite ledger, the Airflow home
(so ``make airflow`` opens the same runs, with the newest form under *Required
actions*), the outbox, inbox, archive, quarantine and reports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from urllib.parse import quote

GRADUATES = 5000
SEED = 2021
FIRST_YEAR = 2020  # academic year 2020-2021: awards from 2021-07-01
ANNUAL = "cpf_deposit_apogee_annual"
FORM = "cpf_deposit_form"
RECEIPTS = "cpf_receipts"
DEPOSITOR = "Démonstration"
RUN_TIMEOUT_S = 900


def prepare_environment(home: Path, dags: Path) -> dict[str, Path]:
    """Environment of the demo: working folders, Airflow home, connections."""
    home = home.resolve()
    os.environ["CPF_DEPOSIT_HOME"] = str(home)
    os.environ.pop("CPF_DEPOSIT_CONFIG", None)
    airflow_home = home / "var" / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    demo = home / "var" / "demo"
    os.environ["AIRFLOW_CONN_APOGEE_DB"] = f"sqlite://{demo / 'apogee.sqlite'}"
    return {"home": home, "airflow_home": airflow_home, "demo": demo, "repo": dags.resolve().parent}


def _passwords(airflow_home: Path) -> dict[str, str] | None:
    """Keep the logins of an earlier demo (the file ``make airflow`` reads too)."""
    path = airflow_home / "simple_auth_manager_passwords.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_demo(home: Path, dags: Path, graduates: int = GRADUATES, log=print) -> dict:
    env = prepare_environment(home, dags)

    from cpf_deposit.config import load_config
    from cpf_deposit.demo.build import write_demo
    from cpf_deposit.demo.stack import AirflowStack

    config = load_config()
    if not (env["demo"] / "apogee.sqlite").exists():
        files = write_demo(env["demo"], graduates, SEED)
        log(f"Base Apogée de démonstration : {files.persons} personnes ({files.apogee})")

    stack_env = {
        "CPF_DEPOSIT_HOME": os.environ["CPF_DEPOSIT_HOME"],
        "AIRFLOW_CONN_APOGEE_DB": os.environ["AIRFLOW_CONN_APOGEE_DB"],
    }
    stack = AirflowStack(
        env["airflow_home"],
        env["repo"],
        executor="LocalExecutor",
        env=stack_env,
        passwords=_passwords(env["airflow_home"]),
    )
    log("Démarrage d'Airflow (api-server, scheduler, dag-processor, triggerer)…")
    with stack:
        api = stack.client()
        for dag_id in (ANNUAL, FORM, RECEIPTS):
            api.wait_dag_parsed(dag_id)
        pending = _deposit_every_year_but_the_last(api, config, log)
        deposited = [p for p in (_archived(config, n) for n in _deposited_files(config)) if p]
        simulate_cdc(config, deposited, log)
        run_id = api.trigger(RECEIPTS)
        api.wait_run(RECEIPTS, run_id, timeout=RUN_TIMEOUT_S)
        log(f"Accusés de traitement intégrés : run {run_id}")
        report = _xcom(api, RECEIPTS, run_id, "reconcile_and_report")
    return {
        **summary(config, report),
        "pending_form": pending,
        "passwords": str(stack.passwords_file),
    }


def _xcom(api, dag_id: str, run_id: str, task_id: str):
    """A task's return value, read back through the REST API."""
    from urllib.parse import quote

    entry = api.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
        "/xcomEntries/return_value",
        {"deserialize": "true", "stringify": "false"},
    )
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def _deposit_every_year_but_the_last(api, config, log) -> str | None:
    """Unpause the annual DAG: its catch-up makes one run per academic year, one at a
    time, each staging that year's files, and each staging opens a deposit form (a run
    of ``cpf_deposit_form``). Then answer the forms, oldest first, as the person who
    deposits would, all but the newest, left waiting. Returns that form's run id."""
    for dag_id in (FORM, ANNUAL, RECEIPTS):
        api.unpause(dag_id)
    years = range(FIRST_YEAR, _last_catchup_year(config) + 1)
    for year in years:
        run_id = _wait_run_of(api, year)
        api.wait_run(ANNUAL, run_id, timeout=RUN_TIMEOUT_S)
        log(f"Dépôt {year}-{year + 1} : run {run_id} terminé, fichiers préparés")
    forms = _wait_forms(api, len(years))
    pending = None
    for i, form in enumerate(forms):
        run_id = form["dag_run_id"]
        if not _awaits_answer(api, run_id):
            continue  # nothing was staged: no form
        if i == len(forms) - 1:
            pending = run_id
            log(f"Formulaire de dépôt laissé en attente : {run_id}")
            break
        _settle(api, run_id)
        _answer(api, run_id)
        api.wait_run(FORM, run_id, timeout=RUN_TIMEOUT_S)
        log(f"Formulaire de dépôt {run_id} : dépôt enregistré")
    return pending


def _answer(api, run_id: str, tries: int = 4) -> None:
    """Answer a form; again when the API answered 500 (SQLite metadata locked by the
    scheduler for a moment: the demo's embedded database, not a production one)."""
    import time

    from cpf_deposit.demo.stack import ApiError

    for attempt in range(1, tries + 1):
        try:
            api.answer_action(
                FORM, run_id, "await_deposit", -1, ["OK"], {"deposited_by": DEPOSITOR}
            )
            return
        except ApiError as exc:
            if exc.status < 500 or attempt == tries:
                raise
            time.sleep(2 * attempt)


def _wait_forms(api, expected: int, timeout: float = RUN_TIMEOUT_S) -> list[dict]:
    """The deposit form runs, oldest first, once each staging has its run."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        runs = sorted(api.dag_runs(FORM), key=lambda r: r["run_after"])
        if len(runs) >= expected:
            return runs
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(runs)} deposit form run(s) for {expected} stagings")
        time.sleep(2)


def _awaits_answer(api, run_id: str, timeout: float = RUN_TIMEOUT_S) -> bool:
    """True once the form run's ``await_deposit`` awaits input; False when the run
    ended without a form (nothing staged)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        if api.task_states(FORM, run_id).get("await_deposit") == "awaiting_input":
            return True
        run = api.dag_run(FORM, run_id)
        if run["state"] == "success":
            return False
        if run["state"] == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"deposit form run {run_id} is {run['state']}")
        time.sleep(1)


def _settle(api, run_id: str, seconds: float = 12) -> None:
    """Answer as a person would, not within seconds of the form opening: Airflow 3.3's
    scheduler fails a form answered before it has handled the executor's "finished"
    event of the parked task (the task supervisor lingers about 5 s after the task
    parks; the event then meets a task queued again and the scheduler fails it)."""
    import time

    ti = api.get(
        f"/api/v2/dags/{FORM}/dagRuns/{quote(run_id, safe='')}/taskInstances/await_deposit"
    )
    parked = dt.datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00"))
    wait = seconds - (dt.datetime.now(dt.UTC) - parked).total_seconds()
    if wait > 0:
        time.sleep(wait)


def _last_catchup_year(config) -> int:
    from cpf_deposit.orchestration import last_backfillable_year

    return last_backfillable_year(dt.datetime.now(config.tz).date())


def _wait_run_of(api, year: int, timeout: float = RUN_TIMEOUT_S) -> str:
    """The id of the annual run covering academic year ``year`` (logical date 1 October
    of ``year + 1``), once the scheduler has made it (the previous run ended first)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        for run in api.dag_runs(ANNUAL):
            if (run.get("logical_date") or "").startswith(f"{year + 1}-10-01"):
                return run["dag_run_id"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no annual run for {year}-{year + 1} after {timeout:.0f} s")
        time.sleep(2)


def _deposited_files(config) -> list[str]:
    from cpf_deposit.ledger.schema import FileStatus
    from cpf_deposit.ledger.status import files_with_status
    from cpf_deposit.orchestration import ledger_session

    with ledger_session(config) as ledger, ledger.engine.connect() as conn:
        return [f.file_name for f in files_with_status(conn, FileStatus.DEPOSITED)]


def _archived(config, file_name: str) -> Path | None:
    path = Path(config.paths.archive) / file_name
    return path if path.is_file() else None


def simulate_cdc(config, files: list[Path], log=print) -> None:
    from cpf_deposit.simulator.cdc import CdcState, CivilRegister, simulate

    register = CivilRegister.from_sqlite(Path(config.paths.base_dir) / "demo" / "register.sqlite")
    state = CdcState(Path(config.paths.base_dir) / "cdc-simulator" / "state.sqlite")
    try:
        for flux in files:
            o = simulate(flux, register, Path(config.paths.inbox), state, xsd_path=config.xsd_path)
            log(f"CDC (simulée) : {flux.name} : {o.accepted} acceptés, {o.rejected} rejetés")
    finally:
        state.close()


def summary(config, out: dict) -> dict:
    """What the demo prints: the receipts run's figures and where the files are."""
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
    if out.get("pending_form"):
        print(f"Formulaire de dépôt en attente : run {out['pending_form']}")
    print()
    print("Pour ouvrir l'interface : make airflow, puis http://localhost:8080")
    print(f"  utilisateur admin, mot de passe dans {out['passwords']}")
    print("  Parcourir → Actions requises : le formulaire du dernier dépôt ;")
    print("  Parcourir → Rapprochement CDC : le tableau de bord.")
    print(
        f"demo: reconciliation rate {rate} over {out['processed']} processed passages "
        "(CDC threshold 90 %, national average 92.25 %)"
    )

"""Deposit DAGs: one nightly and one annual DAG per source of the institution config.

Wiring only: every task calls :mod:`cpf_deposit.orchestration`. Heavy libraries are
imported inside the tasks, so parsing this file stays fast.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, TriggerRule, task

from cpf_deposit.config import load_config
from cpf_deposit.orchestration import (
    FLUX_STAGED_ASSET,
    OWNER,
    dag_defaults,
    last_backfillable_year,
)

CONFIG = load_config()
TZ = CONFIG.timezone
# Staging emits it with the staged files' names: the deposit form DAG opens a form.
FLUX_STAGED = Asset(**FLUX_STAGED_ASSET)

# The last academic year that has ended: the newest one a backfill can cover.
LAST_YEAR = last_backfillable_year(pendulum.now(TZ).date())

SCHEDULES = {
    # Every night at 02:30, Paris time: a rolling window on the award date.
    "nightly": (CronTriggerTimetable("30 2 * * *", timezone=TZ), False),
    # Every 1 October at 03:00, after the September juries: the academic year just
    # ended. Catch-up from July 2021 replays 2020-2021 onwards, once each.
    "annual": (CronTriggerTimetable("0 3 1 10 *", timezone=TZ), True),
}

SCHEDULE_TEXT = {
    "nightly": "every night at 02:30 (Europe/Paris), awards of the last 400 days, no catch-up",
    "annual": "every 1 October at 03:00 (Europe/Paris), the academic year just ended, "
    "catch-up from academic year 2020-2021",
}

PARAMS = {
    "academic_year": Param(
        None,
        type=["null", "integer"],
        minimum=2020,
        maximum=2100,
        title="Année universitaire",
        description="Année de début (2023 pour 2023-2024 : diplômes obtenus du 1er septembre "
        "2023 inclus au 1er septembre 2024 exclu). Vide : la fenêtre du calendrier (nuit : "
        "les 400 derniers jours, aujourd'hui inclus ; annuel : l'année qui vient de se "
        "terminer).",
    ),
    "certification_codes": Param(
        [],
        type="array",
        items={"type": "string", "pattern": "^(RNCP|RS)[0-9]+$"},
        title="Certifications",
        description="Limiter l'envoi à ces codes France compétences (RNCP34034, RS5875). "
        "Vide : toutes.",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Essai à blanc",
        description="Tout sauf la réservation dans le registre et le dépôt : extraction, "
        "contrôle d'identité, construction et validation du flux.",
    ),
    "lookback_days": Param(
        400,
        type="integer",
        minimum=1,
        maximum=2000,
        title="Profondeur (jours)",
        description="Runs de nuit : nombre de jours de diplômes remontés (jusqu'à aujourd'hui "
        "inclus). Le registre évite tout doublon, une fenêtre large ne coûte que du temps.",
    ),
}

DOC = """
# CPF deposit: {source}, {cadence}

**Purpose.** Send the Caisse des Dépôts every holder of an RNCP/RS certification
awarded since 1 July 2021 by the **{system}** source, for the CPF *Passeport de
compétences*: extract the window's graduates, check identities (holders the CDC would
reject are quarantined for the scolarité office), keep what the ledger says must be
sent (never sent, or rejected and corrected since), build and validate the XML flux,
stage it in the outbox, and wait for the person who deposits it on the CDC portal.

**Owner.** {owner}. **Schedule.** {schedule}.

**Inputs.** Connection `{conn}` (the source), connection `cpf_ledger` (the ledger;
SQLite under the working folder when undefined), the institution config
(`$CPF_DEPOSIT_CONFIG`).

**Outputs.** Flux files and manifests in the outbox (asset `cpf_flux_staged`, which
opens a deposit form in `cpf_deposit_form`); quarantine workbook and extraction issues
in the quarantine folder; ledger rows.

**Manual run.** *Trigger* with params: academic year, certification codes, dry run.

**Backfill.** Runs never duplicate a passage: the ledger claims each passage for one
run. The annual DAG catches up from 2021 by itself once unpaused. To replay the
academic years 2021-2022 to {last_year} on demand (each run covers the year that ended
before its 1 October; a run already there is run again):

    airflow backfill create --dag-id cpf_deposit_{source}_annual \\
        --from-date 2022-10-01 --to-date {to_date} --reprocess-behavior completed

(or *Trigger → Backfill* in the UI, "All runs"). Add `--from-date 2021-10-01` to include
the July–August 2021 awards of 2020-2021. The scheduler runs the backfill's runs, one
at a time.

**Deposit.** The run ends once its files are staged: the DAG `cpf_deposit_form` then
opens a deposit form for them (Browse → Required actions), so a form waiting for its
answer never holds the next run back. Outside Airflow: `cpf-deposit deposited FILE
--by NAME`.
"""


def deposit_dag(source: str, cadence: str) -> DAG:
    src = CONFIG.sources[source]
    timetable, catchup = SCHEDULES[cadence]
    with DAG(
        dag_id=f"cpf_deposit_{source}_{cadence}",
        schedule=timetable,
        start_date=pendulum.datetime(2021, 7, 1, tz=TZ),
        catchup=catchup,
        max_active_runs=1,
        default_args=dag_defaults(),
        params=PARAMS,
        tags=["cpf", "stage/deposit", f"cadence/{cadence}", f"source/{src.system}"],
        doc_md=DOC.format(
            source=source,
            cadence=cadence,
            system=src.system,
            owner=OWNER,
            conn=src.conn_id,
            schedule=SCHEDULE_TEXT[cadence],
            last_year=f"{LAST_YEAR}-{LAST_YEAR + 1}",
            to_date=f"{LAST_YEAR + 1}-10-02",
        ),
    ) as dag:

        @task
        def plan(params=None, logical_date=None, dag_run=None) -> dict:
            from cpf_deposit.orchestration import plan as plan_run

            return plan_run(source, cadence, dict(params), logical_date, dag_run.run_id)

        @task
        def extract(run: dict) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("extract", run)

        @task
        def check_identities(run: dict) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("gate", run)

        @task
        def select_delta(run: dict) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("delta", run)

        @task
        def chunks(delta: dict) -> list[str]:
            return delta["chunks"]

        @task(map_index_template="lot {{ chunk }}")
        def build(run: dict, chunk: str) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("build", run, chunk=chunk)

        @task
        def flux_files(built: list[dict]) -> list[str]:
            return [f["file"] for b in built for f in b["files"]]

        # One task per file, named after it: its validation is visible and retryable.
        @task(map_index_template="{{ flux_file }}")
        def validate(run: dict, flux_file: str) -> dict:
            from cpf_deposit.orchestration import name_map_index, run_step

            name_map_index("flux_file", flux_file)
            return run_step("validate", run, file=flux_file)

        # Runs when the build was skipped because nothing was selected (no chunk).
        @task(outlets=[FLUX_STAGED], trigger_rule=TriggerRule.NONE_FAILED)
        def stage(run: dict, outlet_events=None) -> dict:
            from cpf_deposit.orchestration import run_step, staged_event

            staged = run_step("stage", run)
            outlet_events[FLUX_STAGED].extra = staged_event(staged)
            return staged

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def finish(run: dict, ti=None) -> str:
            from cpf_deposit.orchestration import finish as finish_run

            return finish_run(run, failed=ti.xcom_pull(task_ids="stage") is None)

        run = plan()
        delta = select_delta(run)
        built = build.partial(run=run).expand(chunk=chunks(delta))
        validated = validate.partial(run=run).expand(flux_file=flux_files(built))
        staged = stage(run)
        extract(run) >> check_identities(run) >> delta
        validated >> staged >> finish(run)
    return dag


for _source in CONFIG.sources:
    for _cadence in SCHEDULES:
        _dag = deposit_dag(_source, _cadence)
        globals()[_dag.dag_id] = _dag

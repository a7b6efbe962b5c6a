"""Deposit DAGs: one nightly and one annual DAG per source of the institution config.

Wiring only: every task calls :mod:`cpf_deposit.orchestration`. Heavy libraries are
imported inside the tasks, so parsing this file stays fast.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import HITLEntryOperator
from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, TriggerRule, task

from cpf_deposit.config import load_config

CONFIG = load_config()
TZ = CONFIG.timezone
OWNER = os.environ.get("CPF_DEPOSIT_OWNER", "scolarite-data")
ALERT_EMAIL = os.environ.get("CPF_DEPOSIT_ALERT_EMAIL") or None

FLUX_STAGED = Asset(name="cpf_flux_staged", uri="cpf://outbox/staged")
FLUX_DEPOSITED = Asset(name="cpf_flux_deposited", uri="cpf://cdc/deposited")


def _failure_callbacks() -> list:
    """Email through the SMTP connection when an address is configured; the log always."""
    from cpf_deposit.orchestration import log_failure

    if not ALERT_EMAIL:
        return [log_failure]
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(
        to=ALERT_EMAIL,
        subject="[CPF] Échec de {{ ti.dag_id }}.{{ ti.task_id }}",
        html_content="Run {{ run_id }} : la tâche {{ ti.task_id }} a échoué. "
        "Voir le journal dans Airflow.",
    )
    return [log_failure, notifier]


DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "on_failure_callback": _failure_callbacks(),
}

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
        description="Année de début (2023 pour 2023-2024). Vide : la fenêtre du calendrier "
        "(nuit : les 400 derniers jours ; annuel : l'année qui vient de se terminer).",
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
        description="Runs de nuit : nombre de jours de diplômes remontés. Le registre "
        "évite tout doublon, une fenêtre large ne coûte que du temps.",
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

**Outputs.** Flux files and manifests in the outbox (asset `cpf_flux_staged`);
quarantine workbook and extraction issues in the quarantine folder; ledger rows.

**Manual run.** *Trigger* with params: academic year, certification codes, dry run.

**Backfill.** Runs never duplicate a passage: the ledger claims each passage for one
run. The annual DAG catches up from 2021 by itself; to replay years on demand:
`airflow backfill create --dag-id cpf_deposit_{source}_annual --from-date 2021-10-01
--to-date 2025-10-01` (or *Trigger → Backfill* in the UI).

**Deposit.** When files are staged, the task *await_deposit* asks who deposited them
(Browse → Required actions); answering records the deposit in the ledger. Outside
Airflow: `cpf-deposit deposited FILE --by NAME`.
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
        default_args=DEFAULT_ARGS,
        params=PARAMS,
        tags=["cpf", "stage/deposit", f"cadence/{cadence}", f"source/{src.system}"],
        doc_md=DOC.format(
            source=source,
            cadence=cadence,
            system=src.system,
            owner=OWNER,
            conn=src.conn_id,
            schedule=SCHEDULE_TEXT[cadence],
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

        @task(max_active_tis_per_dagrun=4)
        def build_and_validate(run: dict, chunk: str) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("build", run, chunk=chunk)

        # Runs when the build was skipped because nothing was selected (no chunk).
        @task(outlets=[FLUX_STAGED], trigger_rule=TriggerRule.NONE_FAILED)
        def stage(run: dict) -> dict:
            from cpf_deposit.orchestration import run_step

            return run_step("stage", run)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def finish(run: dict, ti=None) -> int:
            from cpf_deposit.orchestration import finish as finish_run

            return finish_run(run, failed=ti.xcom_pull(task_ids="stage") is None)

        @task.short_circuit(ignore_downstream_trigger_rules=False)
        def files_to_deposit(staged: dict) -> bool:
            return bool(staged["staged"])

        @task
        def notify(staged: dict) -> str:
            from cpf_deposit.orchestration import notify as notify_operator

            return notify_operator(staged, ALERT_EMAIL)

        await_deposit = HITLEntryOperator(
            task_id="await_deposit",
            subject="Flux CPF à déposer sur le portail de la Caisse des Dépôts",
            body="{{ ti.xcom_pull(task_ids='stage')['notification']['body'] }}",
            params={
                "deposited_by": Param(
                    "",
                    type="string",
                    minLength=1,
                    title="Déposé par",
                    description="Nom de la personne qui a déposé les fichiers sur le portail.",
                )
            },
            response_timeout=timedelta(days=30),
        )

        @task(outlets=[FLUX_DEPOSITED])
        def record_deposit(staged: dict, response: dict) -> dict:
            from cpf_deposit.orchestration import record_deposits

            return record_deposits(staged, response)

        run = plan()
        delta = select_delta(run)
        built = build_and_validate.partial(run=run).expand(chunk=chunks(delta))
        staged = stage(run)
        extract(run) >> check_identities(run) >> delta
        built >> staged >> finish(run)
        gate = files_to_deposit(staged)
        gate >> notify(staged) >> await_deposit
        record_deposit(staged, await_deposit.output)
    return dag


for _source in CONFIG.sources:
    for _cadence in SCHEDULES:
        _dag = deposit_dag(_source, _cadence)
        globals()[_dag.dag_id] = _dag

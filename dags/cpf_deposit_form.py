"""Deposit form DAG: one form per staging, answered once the files are on the CDC portal.

Wiring only: the tasks call :mod:`cpf_deposit.orchestration`.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.hitl import HITLEntryOperator
from airflow.sdk import DAG, Asset, Param, task

from cpf_deposit.config import load_config
from cpf_deposit.orchestration import (
    ALERT_EMAIL,
    DEPOSIT_TIMEOUT,
    FLUX_DEPOSITED_ASSET,
    FLUX_STAGED_ASSET,
    OWNER,
    dag_defaults,
    deposit_notifiers,
)

TZ = load_config().timezone

FLUX_STAGED = Asset(**FLUX_STAGED_ASSET)
FLUX_DEPOSITED = Asset(**FLUX_DEPOSITED_ASSET)

DOC = """
# CPF deposit form

**Purpose.** The deposit on the CDC portal is manual. Each time a deposit run stages
flux files (asset `cpf_flux_staged`), this DAG opens a form (Browse → Required
actions) listing them, their passage counts and where to find them. The person who
deposited them answers it: *record_deposit* records the deposit in the ledger, archives
the files and wakes the receipts DAG (asset `cpf_flux_deposited`). Forms are separate
runs, so an unanswered form never holds the next deposit run back.

**Owner.** {owner}. **Schedule.** On every staging. *Trigger* it by hand to get one form
for every file still awaiting deposit.

**Inputs.** The staged files' names (asset event), the ledger (connection `cpf_ledger`).

**Outputs.** Ledger rows (DEPOSITED, by whom, when), files moved to the archive.

**Notifications.** The task log always; an email when `CPF_DEPOSIT_ALERT_EMAIL` and the
`smtp_default` connection are set; `cpf_deposit_reminders` reminds every 7 days. A form
unanswered after 30 days fails and leaves the files pending: it never records a
deposit by itself.
"""

with DAG(
    dag_id="cpf_deposit_form",
    schedule=[FLUX_STAGED],
    start_date=pendulum.datetime(2021, 7, 1, tz=TZ),
    catchup=False,
    max_active_runs=64,
    default_args=dag_defaults(),
    tags=["cpf", "stage/deposit", "cadence/on-staging"],
    doc_md=DOC.format(owner=OWNER),
):

    @task
    def staged_files(triggering_asset_events=None) -> dict:
        from cpf_deposit.orchestration import files_awaiting_form, staged_names

        return files_awaiting_form(staged_names(triggering_asset_events, FLUX_STAGED))

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def files_to_deposit(staged: dict) -> bool:
        return bool(staged["staged"])

    await_deposit = HITLEntryOperator(
        task_id="await_deposit",
        subject="{{ ti.xcom_pull(task_ids='staged_files')['notification']['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='staged_files')['form'] }}",
        params={
            "deposited_by": Param(
                None,
                type=["null", "string"],
                maxLength=200,
                title="Déposé par",
                description="Nom de la personne qui a déposé les fichiers sur le portail. "
                "Vide : vous.",
            )
        },
        # No default answer: a form left unanswered must never record a deposit.
        defaults=None,
        notifiers=deposit_notifiers(ALERT_EMAIL),
        response_timeout=DEPOSIT_TIMEOUT,
        retries=0,
    )

    @task(outlets=[FLUX_DEPOSITED])
    def record_deposit(staged: dict, response: dict) -> dict:
        from cpf_deposit.orchestration import record_deposits

        return record_deposits(staged, response)

    staged = staged_files()
    files_to_deposit(staged) >> await_deposit
    record_deposit(staged, await_deposit.output)

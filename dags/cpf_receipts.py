"""Receipts DAG: ingest the CDC's accusés de traitement, reconcile, report.

Wiring only: the tasks call :mod:`cpf_deposit.orchestration`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, task

from cpf_deposit.config import load_config
from cpf_deposit.orchestration import FLUX_DEPOSITED_ASSET, OWNER, dag_defaults

TZ = load_config().timezone

# The deposit form DAG emits this asset when a person records a deposit.
FLUX_DEPOSITED = Asset(**FLUX_DEPOSITED_ASSET)
RECONCILED = Asset(name="cpf_reconciliation", uri="cpf://reports/reconciliation")

DOC = """
# CPF receipts: ingest, reconcile, report

**Purpose.** Turn the CDC's accusés de traitement into ledger statuses (accepted,
rejected with the CDC's reason, file rejected), then compute the reconciliation rate
(accepted / processed) against the CDC's 90 % threshold and the 92.25 % national
average, and write the worklist of holders to correct for the scolarité office.

**Owner.** {owner}. **Schedule.** Every hour (Europe/Paris), and as soon as a deposit is
recorded (asset `cpf_flux_deposited`). Receipts are downloaded by hand from the CDC
portal and dropped into the inbox folder; nothing runs when the inbox is empty.

**Inputs.** The inbox (`paths.inbox` of the institution config), the ledger
(connection `cpf_ledger`), the identity-gate verdicts of past runs.

**Outputs.** Ledger statuses; receipts archived beside their file (refused ones in
`inbox/refused` with a reason); the HTML report and the worklist (CSV, XLSX) in
`paths.reports` (asset `cpf_reconciliation`).

**Manual run.** *Trigger* after dropping receipts. Outside Airflow:
`cpf-deposit ingest-receipts` then `cpf-deposit report`.
"""

with DAG(
    dag_id="cpf_receipts",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("15 * * * *", timezone=TZ), assets=[FLUX_DEPOSITED]
    ),
    start_date=pendulum.datetime(2021, 7, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(),
    tags=["cpf", "stage/receipts", "cadence/hourly"],
    doc_md=DOC.format(owner=OWNER),
):

    @task
    def ingest() -> dict:
        from cpf_deposit.orchestration import ingest_receipts

        return ingest_receipts()

    @task(outlets=[RECONCILED])
    def reconcile_and_report() -> dict:
        from cpf_deposit.orchestration import reconcile_and_report as report

        return report()

    ingest() >> reconcile_and_report()

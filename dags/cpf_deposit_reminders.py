"""Reminder DAG: files staged for deposit and still not deposited, every morning.

Wiring only: the task calls :mod:`cpf_deposit.orchestration`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from cpf_deposit.config import load_config
from cpf_deposit.orchestration import ALERT_EMAIL, OWNER, dag_defaults

TZ = load_config().timezone

DOC = """
# CPF deposit reminders

**Purpose.** A deposit form (task *await_deposit* of the deposit DAGs) waits 30 days
for the person who deposits the flux on the CDC portal, then fails and leaves the
files pending. Before that, this DAG reminds: on the 7th, 14th, 21st and 28th day a
file has waited, one line per file in the task log, and one email when
`CPF_DEPOSIT_ALERT_EMAIL` is set (Airflow's `smtp_default` connection).

**Owner.** {owner}. **Schedule.** Every morning at 09:00 (Europe/Paris), no catch-up.

**Inputs.** The ledger (connection `cpf_ledger`): files staged and not deposited.

**Outputs.** Log lines and emails naming files and counts, never a holder.
"""

with DAG(
    dag_id="cpf_deposit_reminders",
    schedule=CronTriggerTimetable("0 9 * * *", timezone=TZ),
    start_date=pendulum.datetime(2021, 7, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(10),
    tags=["cpf", "stage/deposit", "cadence/daily"],
    doc_md=DOC.format(owner=OWNER),
):

    @task
    def remind() -> dict:
        from cpf_deposit.orchestration import remind_pending_deposits

        return remind_pending_deposits(ALERT_EMAIL)

    remind()

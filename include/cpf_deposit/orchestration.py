"""What the Airflow tasks call: plan a run, run one pipeline step, finish it.

The DAG files only wire tasks; every decision (which window a run covers, what a dry
run skips, how a deposit is recorded) is made here, in plain Python that tests call
without Airflow. Inputs and outputs are JSON-able dicts (XCom), holding counts,
paths and technical ids only, never personal data.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from contextlib import contextmanager
from typing import Any

from cpf_deposit.config import load_config
from cpf_deposit.pipeline import PipelineError, Window

log = logging.getLogger(__name__)


@contextmanager
def ledger_session(config):
    """The institution's ledger, disposed of when the block ends."""
    from cpf_deposit.ledger import open_ledger

    ledger = open_ledger(config)
    try:
        yield ledger
    finally:
        ledger.dispose()


NIGHTLY_LOOKBACK_DAYS = 400  # juries publish late; the ledger makes a wide window free
_CODE = re.compile(r"(RNCP|RS)[0-9]+")


def academic_year_of_run(logical: dt.date) -> int:
    """The academic year an annual run covers: the last one that ended before it.

    Annual runs fire on 1 October, after the September juries: the run of 2022-10-01
    covers 2021-2022 (awards from 2021-09-01 to 2022-08-31).
    """
    return logical.year - 1 if logical.month >= 9 else logical.year - 2


def last_backfillable_year(today: dt.date) -> int:
    """The newest academic year whose annual run (1 October) has already come."""
    return today.year - 1 if (today.month, today.day) >= (10, 1) else today.year - 2


def plan(
    source: str,
    cadence: str,
    params: dict[str, Any],
    logical_date: dt.datetime | None,
    run_id: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Decide the window and options of a run, recover what dead runs left, register it.

    ``params`` are the DAG params of a manual run (academic_year, certification_codes,
    dry_run, lookback_days); a scheduled run takes its window from ``logical_date``.
    A manual or asset-triggered run has no logical date: it uses ``now``.
    """
    from cpf_deposit.staging import start_run

    now = now or dt.datetime.now(dt.UTC)
    when = (logical_date or now).date()
    year = params.get("academic_year")
    if year is not None:
        window = Window.academic_year(int(year))
    elif cadence == "annual":
        window = Window.academic_year(academic_year_of_run(when))
    else:
        days = int(params.get("lookback_days") or NIGHTLY_LOOKBACK_DAYS)
        # the end is exclusive (as every window's): tomorrow, so today's awards are in
        window = Window(when - dt.timedelta(days=days), when + dt.timedelta(days=1))
    if window.clipped is None:
        raise PipelineError(f"window {window.start}..{window.end} ends before 2021-07-01")
    codes = sorted(set(params.get("certification_codes") or []))
    bad = [c for c in codes if not _CODE.fullmatch(c)]
    if bad:
        raise PipelineError(f"certification codes of the wrong shape: {', '.join(bad)}")
    config = load_config()
    with ledger_session(config) as ledger:
        started = start_run(
            ledger,
            config,
            run_id,
            kind=cadence,
            params={"source": source, **window.clipped.as_dict(), "codes": codes},
            bound_to_process=False,
        )
    return {
        "run_id": started.run_id,
        "source": source,
        "cadence": cadence,
        "window": window.clipped.as_dict(),
        "certifications": codes,
        "dry_run": bool(params.get("dry_run", False)),
        "work": str(started.work_dir),
        "recovered": started.recovery.summary() if started.recovery else "",
    }


@contextmanager
def task_failures():
    """Map the package's errors onto Airflow's retry decision.

    A deterministic refusal (invalid flux, bad params, a refused configuration) fails
    the task at once: retrying cannot change it. A transient fault (database
    unreachable, lock, disk full) and anything unknown keep Airflow's retries.
    """
    try:
        yield
    except Exception as exc:
        from cpf_deposit.errors import is_retryable

        if is_retryable(exc) is False:
            from airflow.sdk.exceptions import AirflowFailException

            log.error("échec définitif, pas de nouvel essai : %s", exc)
            raise AirflowFailException(str(exc)) from exc
        raise


def name_map_index(key: str, value: str) -> None:
    """Expose ``value`` to the task's ``map_index_template`` (a file name, a chunk)."""
    from airflow.sdk import get_current_context

    get_current_context()[key] = value


def run_step(step: str, run: dict[str, Any], **kwargs) -> dict[str, Any]:
    """Run one pipeline step for a planned run (the body of one Airflow task) and log
    its one-line French summary."""
    from cpf_deposit.summaries import summary_line

    with task_failures():
        result = _run_step(step, run, **kwargs)
    log.info(summary_line(step, result))
    return result


def _run_step(step: str, run: dict[str, Any], **kwargs) -> dict[str, Any]:
    from pathlib import Path

    from cpf_deposit import pipeline

    config = load_config()
    source = pipeline.source_of(config, run["source"])
    work = Path(run["work"])
    if step == "gate":
        return pipeline.gate_step(config, source, work, run["run_id"])
    if step == "build":
        return pipeline.build_step(config, work, kwargs["chunk"])
    if step == "validate":
        return pipeline.validate_step(config, work, kwargs["file"])
    if step == "stage" and run["dry_run"]:
        return {"staged": [], "notification": {"subject": "", "body": ""}, "form": ""}
    with ledger_session(config) as ledger:
        if step == "extract":
            window = Window(
                dt.date.fromisoformat(run["window"]["start"]),
                dt.date.fromisoformat(run["window"]["end"]),
            )
            return pipeline.extract_step(config, source, window, work, run["run_id"], ledger.id_key)
        if step == "delta":
            codes = frozenset(run["certifications"]) or None
            return pipeline.delta_step(
                config, ledger, work, run["run_id"], run["dry_run"], certifications=codes
            )
        if step == "stage":
            return pipeline.stage_step(config, ledger, work, run["run_id"])
    raise ValueError(f"unknown step {step!r}")


def finish(run: dict[str, Any], failed: bool) -> str:
    """End the run: unstaged claims go back to the ledger; the work folder (personal
    data) is removed unless the run failed (kept for diagnosis, purged later). Returns
    and logs, in French, how the run ended."""
    from cpf_deposit.staging import end_run
    from cpf_deposit.summaries import summary_line

    config = load_config()
    with task_failures(), ledger_session(config) as ledger:
        released = end_run(ledger, config, run["run_id"], failed=failed)
    line = summary_line("finish", {"failed": failed, "released": released, "run_id": run["run_id"]})
    log.info(line)
    return line


def record_deposits(staged: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Record who deposited the staged files, from the deposit form's answer: the name
    typed in the form, else the user who answered it."""
    from cpf_deposit.staging import record_deposit

    user = response.get("responded_by_user") or {}
    typed = ((response.get("params_input") or {}).get("deposited_by") or "").strip()
    by = typed or user.get("name") or user.get("id")
    if not by:
        raise PipelineError("the deposit answer names nobody")
    at = response.get("responded_at")
    when = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    config = load_config()
    with task_failures(), ledger_session(config) as ledger:
        recorded = [
            record_deposit(ledger, config, f["file_name"], by, at=when).file_name
            for f in staged.get("staged", [])
        ]
    log.info("dépôt enregistré : %d fichier(s) : %s", len(recorded), ", ".join(recorded))
    return {"deposited": recorded, "by": by}


# The assets that chain the DAGs (one definition; the DAG files build them).
FLUX_STAGED_ASSET = {"name": "cpf_flux_staged", "uri": "cpf://outbox/staged"}
FLUX_DEPOSITED_ASSET = {"name": "cpf_flux_deposited", "uri": "cpf://cdc/deposited"}


def staged_event(staged: dict[str, Any]) -> dict[str, Any]:
    """The extra of a staging's asset event: the staged files' names (no personal data)."""
    return {"files": [f["file_name"] for f in staged.get("staged", [])]}


def staged_names(events, asset) -> list[str] | None:
    """File names carried by the triggering staging events; None for a manual run."""
    found = list((events or {}).get(asset, []))
    if not found:
        return None
    return [name for event in found for name in ((event.extra or {}).get("files") or [])]


def files_awaiting_form(names: list[str] | None, config=None) -> dict[str, Any]:
    """The files a deposit form asks about: those named (``None``: every file) that the
    ledger still holds as staged and not deposited, with the form's text."""
    from cpf_deposit.staging import deposit_form, notification_text, pending_deposit

    config = config or load_config()
    with task_failures(), ledger_session(config) as ledger:
        pending = pending_deposit(ledger)
    wanted = None if names is None else set(names)
    files = [f for f in pending if wanted is None or f.file_name in wanted]
    subject, body = notification_text(files, config) if files else ("", "")
    log.info("formulaire de dépôt : %d fichier(s) en attente de dépôt", len(files))
    return {
        "staged": [
            {"file_name": f.file_name, "id_flux": f.id_flux, "passages": f.passages} for f in files
        ],
        "notification": {"subject": subject, "body": body},
        "form": deposit_form(files, config) if files else "",
    }


DEPOSIT_TIMEOUT = dt.timedelta(days=30)
REMIND_EVERY = dt.timedelta(days=7)  # reminders on days 7, 14, 21 and 28 of a wait


def deposit_notifiers(email_to: str | None) -> list:
    """Who hears that a deposit form awaits an answer: the task log always, and an
    email (Airflow's SMTP connection ``smtp_default``) when an address is configured.
    Called at DAG parse time: Airflow is imported here, the rest when notifying."""
    from airflow.sdk import BaseNotifier

    class DepositFormNotifier(BaseNotifier):
        """Logs (and mails) the deposit form's subject and where to answer it."""

        template_fields = ()

        def __init__(self, to: str | None = None):
            super().__init__()
            self.to = to

        def notify(self, context):
            subject, body = _form_message(context)
            log.info("%s : formulaire de dépôt en attente (%s)", subject, _form_link(context))
            if self.to:
                _send_mail(self.to, subject, body)

    return [DepositFormNotifier(email_to)]


def _form_message(context) -> tuple[str, str]:
    task = context.get("task")
    subject = getattr(task, "subject", "") or "[CPF] Flux à déposer"
    link = _form_link(context)
    body = (getattr(task, "body", "") or "") + f"\n\nFormulaire de dépôt : {link}\n"
    return subject, body


def _form_link(context) -> str:
    """The *Required actions* page of this task, when ``[api] base_url`` is set."""
    try:
        task = context["task"]
        return task.generate_link_to_ui_from_context(context=context)
    except Exception:  # no base_url configured: say where to look instead
        return "Parcourir → Actions requises"


def _send_mail(to: str, subject: str, body: str) -> None:
    from html import escape

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook() as smtp:
        smtp.send_email_smtp(to=to, subject=subject, html_content=f"<pre>{escape(body)}</pre>")


def remind_pending_deposits(
    email_to: str | None, now: dt.datetime | None = None, config=None
) -> dict[str, Any]:
    """Remind, before the form times out, of files staged and still not deposited:
    one line per file in the log (and one email) on every 7th day of its wait."""
    from cpf_deposit.staging import pending_deposit

    now = now or dt.datetime.now(dt.UTC)
    config = config or load_config()
    with task_failures(), ledger_session(config) as ledger:
        pending = pending_deposit(ledger)
    due = []
    for rec in pending:
        staged_at = rec.staged_at or rec.built_at
        if staged_at.tzinfo is None:
            staged_at = staged_at.replace(tzinfo=dt.UTC)
        waited = now - staged_at
        if waited.days and waited.days % REMIND_EVERY.days == 0 and waited < DEPOSIT_TIMEOUT:
            due.append((rec, waited.days))
    for rec, days in due:
        log.warning(
            "rappel : %s (%d passages) attend son dépôt depuis %d jours",
            rec.file_name,
            rec.passages,
            days,
        )
    if due and email_to:
        lines = [
            f"- {r.file_name} : {r.passages} passages, en attente depuis {d} jours" for r, d in due
        ]
        _send_mail(
            email_to,
            f"[CPF] Rappel : {len(due)} fichier(s) à déposer sur le portail de la CDC",
            "\n".join(lines) + "\n\nRépondez au formulaire de dépôt (Parcourir → Actions "
            "requises) une fois le dépôt fait.\n",
        )
    log.info("rappels : %d fichier(s) en attente de dépôt, %d rappel(s)", len(pending), len(due))
    return {"pending": len(pending), "reminded": [r.file_name for r, _ in due]}


OWNER = os.environ.get("CPF_DEPOSIT_OWNER", "scolarite-data")
ALERT_EMAIL = os.environ.get("CPF_DEPOSIT_ALERT_EMAIL") or None


def dag_defaults(retry_minutes: int = 5) -> dict[str, Any]:
    """Every DAG's task defaults: the owner, two retries for transient faults
    (deterministic refusals fail at once, see :func:`task_failures`), and on failure a
    log line, plus an email through the SMTP connection when an address is configured."""
    callbacks: list = [log_failure]
    if ALERT_EMAIL:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        callbacks.append(
            SmtpNotifier(
                to=ALERT_EMAIL,
                subject="[CPF] Échec de {{ ti.dag_id }}.{{ ti.task_id }}",
                html_content="Run {{ run_id }} : la tâche {{ ti.task_id }} a échoué. "
                "Voir le journal dans Airflow.",
            )
        )
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=retry_minutes),
        "on_failure_callback": callbacks,
    }


def log_failure(context) -> None:
    """Failure callback: one line naming the task and the run (no personal data)."""
    ti = context.get("ti") or context.get("task_instance")
    log.error(
        "échec CPF : %s.%s, run %s, essai %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        context.get("run_id"),
        getattr(ti, "try_number", "?"),
    )


def ingest_receipts() -> dict[str, Any]:
    """Ingest every receipt of the inbox into the ledger (receipts DAG, first task)."""
    from cpf_deposit.receipts.ingest import ingest_inbox

    config = load_config()
    with ledger_session(config) as ledger:
        report = ingest_inbox(ledger, config)
    return {
        "receipts": [r.as_dict() for r in report.results],
        "accepted": report.accepted,
        "problem": report.problem,
    }


def reconcile_and_report(config=None) -> dict[str, Any]:
    """Rates, worklist and HTML report from the ledger (receipts DAG, second task)."""
    from cpf_deposit.receipts.report import write_report

    config = config or load_config()
    with ledger_session(config) as ledger:
        files = write_report(ledger, config)
    rec = files.reconciliation
    return {
        "rate": rec.rate,
        "processed": rec.processed,
        "report": str(files.html),
        "worklist_csv": str(files.worklist_csv),
        "worklist_xlsx": str(files.worklist_xlsx),
        "to_fix": files.to_fix,
    }

"""What the Airflow tasks call: plan a run, run one pipeline step, finish it.

The DAG files only wire tasks; every decision (which window a run covers, what a dry
run skips, how a deposit is recorded) is made here, in plain Python that tests call
without Airflow. Inputs and outputs are JSON-able dicts (XCom), holding counts,
paths and technical ids only, never personal data.
"""

from __future__ import annotations

import datetime as dt
import logging
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


def run_step(step: str, run: dict[str, Any], **kwargs) -> dict[str, Any]:
    """Run one pipeline step for a planned run (the body of one Airflow task)."""
    from pathlib import Path

    from cpf_deposit import pipeline

    config = load_config()
    source = pipeline.source_of(config, run["source"])
    work = Path(run["work"])
    if step == "gate":
        return pipeline.gate_step(config, source, work, run["run_id"])
    if step == "build":
        return pipeline.build_step(config, work, kwargs["chunk"])
    if step == "stage" and run["dry_run"]:
        return {"staged": [], "notification": {"subject": "", "body": ""}}
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


def finish(run: dict[str, Any], failed: bool) -> int:
    """End the run: unstaged claims go back to the ledger; the work folder (personal
    data) is removed unless the run failed (kept for diagnosis, purged later)."""
    from cpf_deposit.staging import end_run

    config = load_config()
    with ledger_session(config) as ledger:
        return end_run(ledger, config, run["run_id"], failed=failed)


def record_deposits(staged: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Record who deposited the staged files, from the human-in-the-loop answer."""
    from cpf_deposit.staging import record_deposit

    user = response.get("responded_by_user") or {}
    by = (response.get("params_input") or {}).get("deposited_by") or user.get("name")
    if not by:
        raise PipelineError("the deposit answer names nobody")
    at = response.get("responded_at")
    when = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
    config = load_config()
    with ledger_session(config) as ledger:
        recorded = [
            record_deposit(ledger, config, f["file_name"], by, at=when).file_name
            for f in staged.get("staged", [])
        ]
    return {"deposited": recorded, "by": by}


def notify(staged: dict[str, Any], email_to: str | None = None) -> str:
    """Tell the operator that files await deposit: by email when an address and an
    SMTP connection are configured, otherwise in the task log (no personal data)."""
    note = staged.get("notification") or {}
    subject, body = note.get("subject", ""), note.get("body", "")
    if email_to:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook() as smtp:
            smtp.send_email_smtp(to=email_to, subject=subject, html_content=f"<pre>{body}</pre>")
        return f"email sent to {email_to}: {subject}"
    return f"{subject}\n{body}"


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

"""``cpf-deposit report``: the reconciliation report and the worklist of CDC rejections.

Writes into ``paths.reports`` (or ``--out``) an offline HTML page (rates over time
against the CDC's 90 % threshold and the 92,25 % national average, reasons, per
certification, what the identity gate had predicted) and the worklist for the
scolarité office (CSV and XLSX, mode 0600). Prints the overall rate. Exit 1 when the
rate is below the CDC's threshold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_DATA, EXIT_OK
from cpf_deposit.commands import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write the reconciliation report (HTML) and the worklist of CDC rejections",
        description="Reconcile the CDC's receipts with what was sent: rate per file, "
        "source, certification, academic year and month of deposit; rejections by reason "
        "and by identity-gate rule; and the worklist of rejected holders (CSV, XLSX).",
    )
    p.add_argument("--out", type=Path, help="folder (default: paths.reports)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.ledger import open_ledger
    from cpf_deposit.receipts.reconcile import CDC_THRESHOLD
    from cpf_deposit.receipts.report import pct, write_report

    config = config_from(args)
    ledger = open_ledger(config)
    try:
        files = write_report(ledger, config, args.out)
    finally:
        ledger.dispose()
    rec = files.reconciliation
    print(f"  rapport : {files.html}")
    print(
        f"  liste de travail : {files.worklist_xlsx} ({files.worklist_rows} passages rejetés, "
        f"{files.to_fix} à corriger)"
    )
    print(
        f"  {rec.accepted} acceptés (dont {rec.already_in_base} déjà en base), {rec.rejected} "
        f"rejetés, {rec.file_rejected} dans des fichiers rejetés (XSD)"
    )
    below = rec.rate is not None and rec.rate < CDC_THRESHOLD
    print(
        f"cpf-deposit report: reconciliation rate {pct(rec.rate)} over {rec.processed} "
        f"processed passage(s){' (below the 90 % threshold)' if below else ''}"
    )
    return EXIT_DATA if below else EXIT_OK

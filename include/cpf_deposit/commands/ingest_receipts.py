"""``cpf-deposit ingest-receipts [PATH...]``: apply the CDC's receipts to the ledger.

Without PATH, the configured inbox (``paths.inbox``). A PATH is a folder or fsspec
URL (read as an inbox: files archived or refused are moved out of it) or a receipt
file (archived by copy, left in place). Prints, per file, the accepted passages,
the rejected ones by reason and the reconciliation rate. Exit 1 when a file was
refused or a receipt names idTechniques its file does not hold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError
from cpf_deposit.commands import config_from

REASON_FR = {
    "no_match_stage_1": "aucun titulaire (critères obligatoires)",
    "no_match_stage_2": "aucun titulaire (jour et mois de naissance)",
    "no_match_stage_3": "aucun titulaire (commune de naissance et autres données)",
    "no_match_first_names_2_3": "aucun titulaire (prénoms 2 et 3)",
    "several_holders": "plusieurs titulaires",
    "certification_ko": "certification KO",
    "dates": "dates incohérentes",
    "unknown": "message inconnu",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest-receipts",
        help="apply the CDC's accusés de traitement to the ledger and archive them",
        description="Read each accusé de traitement (XSD errors or per-passage results), "
        "update the ledger in one transaction per receipt, archive it, and archive the "
        "accusés de réception beside their file. Refused files go to <inbox>/refused/ "
        "with a reason file; the ledger is left untouched.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="receipt files, folders or fsspec URLs (default: the configured inbox)",
    )
    p.add_argument("--conn-id", help="Airflow connection for an fsspec inbox URL")
    p.set_defaults(func=run)


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.2f} %".replace(".", ",")


def describe(r) -> list[str]:
    """French lines for one file's result (no personal data)."""
    from cpf_deposit.receipts.ingest import APPLIED, ARCHIVED, DUPLICATE

    if r.status == DUPLICATE:
        return [f"{r.name} : déjà intégré (archivé sous {r.duplicate_of}), aucun changement"]
    if r.status == ARCHIVED:
        return [f"{r.name} : accusé de réception archivé avec {r.file_name} ({r.archived_as})"]
    if r.status != APPLIED:
        return [f"{r.name} : REFUSÉ, {r.error}", f"    déplacé vers {r.refused_to}"]
    lines = [f"{r.name} → {r.file_name} (idFlux {r.id_flux}, traitement {r.processing_id})"]
    if r.shape == "xsd_errors":
        lines.append(
            f"    fichier rejeté par le contrôle XSD : {len(r.xsd_errors)} erreur(s), "
            f"{r.file_rejected} passage(s) à renvoyer après correction"
        )
        for e in r.xsd_errors:
            lines.append(f"      ligne {e.line}, colonne {e.column} : {e.message}")
        return lines
    lines.append(
        f"    acceptés : {r.accepted_total} (dont {r.already_in_base} déjà en base) ; "
        f"rejetés : {r.rejected_total} ; taux : {_pct(r.rate)}"
    )
    for reason, n in sorted(r.rejected.items(), key=lambda kv: -kv[1]):
        lines.append(f"      {REASON_FR.get(reason, reason)} : {n}")
    for message, n in r.unknown_messages.items():
        lines.append(f"      message inconnu ({n}) : « {message} »")
    if r.unknown_ids:
        shown = ", ".join(r.unknown_ids[:10]) + (" …" if len(r.unknown_ids) > 10 else "")
        lines.append(f"    idTechnique absents de ce fichier : {len(r.unknown_ids)} ({shown})")
    if r.superseded:
        lines.append(f"    renvoyés depuis dans un fichier plus récent : {len(r.superseded)}")
    if r.recorded_before:
        lines.append(f"    résultats déjà enregistrés : {r.recorded_before}")
    if r.missing:
        lines.append(f"    passages du fichier sans résultat dans l'accusé : {r.missing}")
    return lines


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.ledger import open_ledger
    from cpf_deposit.receipts.ingest import (
        APPLIED,
        ARCHIVED,
        DUPLICATE,
        REFUSED,
        IngestReport,
        inbox_for,
        ingest_files,
        ingest_inbox,
    )

    config = config_from(args)
    files, inboxes = [], []
    for raw in args.paths:
        if "://" in raw and not raw.startswith("file://"):
            inboxes.append(inbox_for(config, raw, args.conn_id))
        elif Path(raw).is_dir():
            inboxes.append(inbox_for(config, raw))
        elif Path(raw).is_file() or Path(raw).is_symlink():
            files.append(Path(raw))
        else:
            raise UsageError(f"no such file or folder: {raw}")
    if not args.paths:
        inboxes.append(inbox_for(config))
    ledger = open_ledger(config)
    report = IngestReport()
    try:
        for inbox in inboxes:
            report.results += ingest_inbox(ledger, config, inbox).results
        if files:
            report.results += ingest_files(ledger, config, files).results
    finally:
        ledger.dispose()
    for r in report.results:
        for line in describe(r):
            print(line)
    unknown = sum(len(r.unknown_ids) for r in report.results)
    print(
        f"cpf-deposit ingest-receipts: {report.count(APPLIED)} receipt(s) applied, "
        f"{report.count(ARCHIVED)} accusé(s) de réception archived, "
        f"{report.count(DUPLICATE)} duplicate(s), {report.count(REFUSED)} refused, "
        f"{unknown} unknown idTechnique(s); {report.accepted} accepted of {report.processed} "
        f"processed, reconciliation {_pct(report.rate)}"
    )
    return EXIT_DATA if report.problem else EXIT_OK

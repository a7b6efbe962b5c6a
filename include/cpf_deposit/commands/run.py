"""``cpf-deposit run``: the whole deposit pipeline for a source and a window."""

from __future__ import annotations

import argparse
import datetime as dt

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError
from cpf_deposit.commands import config_from

FIRST_YEAR, LAST_YEAR = 2020, 2100  # as the DAG's academic_year param


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="extract, check identities, select the delta, build, validate and stage",
        description="Run the deposit pipeline outside Airflow, with the same code as the "
        "DAGs: extract the window's graduates, run the identity gate (blocked holders "
        "are quarantined), keep what the ledger says must be sent, build and validate "
        "the flux, and stage it in the outbox for the manual deposit.",
    )
    p.add_argument("--source", required=True, help="source name in the config (e.g. apogee)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--academic-year",
        type=int,
        metavar="YEAR",
        help="2023 for 2023-2024: awards from 2023-09-01 (inclusive) to 2024-09-01 (exclusive)",
    )
    when.add_argument(
        "--from",
        dest="date_from",
        type=_date,
        metavar="DATE",
        help="first award date of the window (inclusive; never before 2021-07-01)",
    )
    p.add_argument(
        "--to",
        dest="date_to",
        type=_date,
        metavar="DATE",
        help="end of the window, exclusive: awards of that day belong to the next window",
    )
    p.add_argument(
        "--certification",
        action="append",
        metavar="CODE",
        help="only this certification (RNCP34034, RS5875); repeat for several",
    )
    p.add_argument("--dry-run", action="store_true", help="everything but claiming and staging")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.pipeline import PASSPORT_START, PipelineError, Window, run_pipeline

    config = config_from(args)
    if args.source not in config.sources:
        known = ", ".join(config.sources) or "none"
        raise UsageError(f"--source {args.source}: no such source in the config ({known})")
    if args.academic_year is not None:
        # The DAG param's bounds; a year that ended before the Passeport sends nothing.
        if not FIRST_YEAR <= args.academic_year <= LAST_YEAR:
            raise UsageError(
                f"--academic-year {args.academic_year}: expected {FIRST_YEAR} to {LAST_YEAR} "
                f"(2023 for 2023-2024; awards before {PASSPORT_START} are not sent)"
            )
        window = Window.academic_year(args.academic_year)
    else:
        if args.date_to is None:
            raise UsageError("--from needs --to")
        try:
            window = Window(args.date_from, args.date_to)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if window.clipped is None:
        raise UsageError(f"window {window.start}..{window.end} ends before {PASSPORT_START}")
    try:
        certifications = frozenset(args.certification) if args.certification else None
        out = run_pipeline(
            config, args.source, window, dry_run=args.dry_run, certifications=certifications
        )
    except PipelineError as exc:
        print(f"cpf-deposit run: stopped, {exc}")
        return EXIT_DATA
    ex, gate, delta = out["extract"], out["gate"], out["delta"]
    print(f"Run {out['run_id']}, {ex['window']['start']} → {ex['window']['end']}")
    print(
        f"  extraction : {ex['rows']} lignes, {ex['passages']} passages, "
        f"{ex['errors']} erreurs, {ex['warnings']} avertissements ({ex['issues']})"
    )
    print(
        f"  contrôle d'identité : {gate['BLOCK']} bloqués, {gate['WARN']} avertis, "
        f"{gate['OK']} sans remarque ({gate['quarantine'].get('quarantine_xlsx', '')})"
    )
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(delta["skipped"].items())) or "aucun"
    print(f"  delta : {delta['selected']} à envoyer ; écartés : {skipped}")
    staged = out.get("stage", {}).get("staged", [])
    for f in staged:
        print(f"  déposer : {f['outbox']}/{f['file_name']} ({f['passages']} passages)")
    mode = " (dry run: nothing claimed or staged)" if args.dry_run else ""
    print(
        f"cpf-deposit run: {delta['selected']} passages selected, {len(staged)} file(s) "
        f"staged, {gate['BLOCK']} quarantined{mode}"
    )
    return EXIT_OK

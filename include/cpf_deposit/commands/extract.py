"""``cpf-deposit extract``: graduates of a source system to a passages Parquet file.

Runs the source query through an Airflow connection id (``AIRFLOW_CONN_<ID>`` works
outside Airflow), with the certification mapping of the config. Exit 0: every award
of the window was written (warnings may remain, see the issues file); 1: some awards
could not be written (no certification, a certification refused by a bad line of the
mapping, no award date); 2: usage or configuration. The window is ``[--from, --to)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cpf_deposit.config import SOURCE_SYSTEMS, Config, Source, load_config


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help="extract the graduates of a source system to a passages Parquet file",
        description="Extract the certification awards of a window [--from, --to) from "
        "Apogée, GEODE or Pégase through an Airflow connection, map them to passages and "
        "write them to Parquet; problems go to FILE.issues.csv (record keys, no personal "
        "data). A malformed line of the certification mapping refuses only the awards of "
        "its diploma version (reported), never the whole mapping.",
    )
    p.add_argument("--source", required=True, choices=SOURCE_SYSTEMS, help="source system")
    p.add_argument(
        "--conn",
        metavar="CONN_ID",
        help="Airflow connection id (default: the conn_id of that source in the config)",
    )
    p.add_argument(
        "--from",
        dest="date_from",
        required=True,
        type=_date,
        metavar="DATE",
        help="first award date of the window (inclusive)",
    )
    p.add_argument(
        "--to",
        dest="date_to",
        required=True,
        type=_date,
        metavar="DATE",
        help="end of the window, exclusive: awards of that day belong to the next window "
        "(--from 2023-09-01 --to 2024-09-01 is academic year 2023-2024)",
    )
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="passages file")
    p.add_argument(
        "--map",
        metavar="FILE.csv",
        help="certification mapping CSV (default: certification_map of the source in the "
        "config, else the table cdc_vdi_certif_map of the source database)",
    )
    p.add_argument("--map-table", metavar="TABLE", help="mapping table in the source database")
    p.set_defaults(func=run)


def _source(config: Config, system: str) -> Source | None:
    if system in config.sources:
        return config.sources[system]
    return next((s for s in config.sources.values() if s.system == system), None)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError
    from cpf_deposit.orchestration import ledger_session
    from cpf_deposit.sources.certmap import CertificationMapError
    from cpf_deposit.sources.extract import SourceError, extract

    config = load_config(args.config)
    source = _source(config, args.source)
    conn_id = args.conn or (source.conn_id if source else None)
    if conn_id is None:
        raise UsageError(f"no --conn given and no {args.source} source in the config")
    if not args.out.endswith(".parquet"):
        raise UsageError("--out must name a .parquet file")
    if args.date_from >= args.date_to:
        raise UsageError("--from must be before --to (the end is exclusive)")
    cmap = Path(args.map) if args.map else (source.certification_map if source else None)
    with ledger_session(config) as ledger:  # the passages get the ledger's idTechnique
        id_key = ledger.id_key
    try:
        report = extract(
            args.source,
            conn_id,
            args.date_from,
            args.date_to,
            args.out,
            id_key=id_key,
            certification_map=cmap,
            map_table=args.map_table,
            options=source.options if source else None,
        )
    except (CertificationMapError, SourceError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    for code, count in sorted(report.by_code.items()):
        print(f"  {code}: {count}")
    print(f"Passages : {report.out}")
    print(f"Lignes sources (contrôle d'identité) : {report.canonical_path}")
    print(f"Signalements : {report.issues_path}")
    print(f"cpf-deposit extract: {report.summary()}")
    return EXIT_DATA if report.errors else EXIT_OK

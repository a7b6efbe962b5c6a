"""``cpf-deposit check FILE``: the identity gate on canonical rows, outside Airflow."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check identities before deposit (what the CDC would reject)",
        description="Run the identity gate (Great Expectations suite) on canonical source "
        "rows (.parquet or .csv). Writes verdicts.parquet and verdicts.csv (one row per "
        "passage: source record key, verdict, rule ids), the quarantine workbook "
        "(quarantaine.csv, quarantaine.xlsx) and an offline HTML report in --out. "
        "Exit 1 when a passage is blocked.",
    )
    p.add_argument("input", type=Path, metavar="FILE", help="canonical rows, .parquet or .csv")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--certification-map",
        type=Path,
        metavar="CSV",
        help="diploma version to RNCP/RS mapping, for rows without a certification code",
    )
    p.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="reference date for the date rules (default: today)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from cpf_deposit.quality.gate import run_gate
    from cpf_deposit.quality.outputs import write_all

    if not args.input.is_file():
        raise UsageError(f"no such input file: {args.input}")
    suffix = args.input.suffix.lower()
    if suffix == ".parquet":
        df = pd.read_parquet(args.input)
    elif suffix == ".csv":
        df = pd.read_csv(args.input, dtype="str", keep_default_na=False, na_values=[""])
    else:
        raise UsageError(f"{args.input.name}: expected a .parquet or .csv file")
    cmap = None
    if args.certification_map is not None:
        from cpf_deposit.sources.certmap import CertificationMap, CertificationMapError

        try:
            cmap = CertificationMap.from_csv(args.certification_map)
        except CertificationMapError as exc:
            raise UsageError(str(exc)) from None
    result = run_gate(df, today=args.today, certification_map=cmap)
    paths = write_all(result, args.out)
    for rule_id, n in result.fired.items():
        if n:
            print(f"  {rule_id}: {n}")
    for path in paths.values():
        print(f"  {path}")
    print(f"cpf-deposit check: {result.summary()}")
    return EXIT_DATA if result.counts["BLOCK"] else EXIT_OK

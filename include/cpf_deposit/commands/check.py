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
        "Rows without their own certification take it from the certification mapping, "
        "the one the extraction uses (--certification-map overrides it); a malformed "
        "line of that mapping blocks its diploma version's rows (R10D). "
        "Exit 1 when a passage is blocked.",
    )
    p.add_argument("input", type=Path, metavar="FILE", help="canonical rows, .parquet or .csv")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--certification-map",
        type=Path,
        metavar="CSV",
        help="diploma version to RNCP/RS mapping, for rows without a certification code "
        "(default: the mapping of the config's source, as the extraction reads it: its "
        "certification_map file, else its mapping table)",
    )
    p.add_argument(
        "--source",
        metavar="NAME",
        help="source of the config whose mapping applies (default: the one source whose "
        "system is that of the rows)",
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
    cmap = _certification_map(args, df)
    result = run_gate(df, today=args.today, certification_map=cmap, rules=_rules(args))
    paths = write_all(result, args.out)
    for rule_id, n in result.fired.items():
        if n:
            print(f"  {rule_id}: {n}")
    for path in paths.values():
        print(f"  {path}")
    print(f"cpf-deposit check: {result.summary()}")
    return EXIT_DATA if result.counts["BLOCK"] else EXIT_OK


def _certification_map(args: argparse.Namespace, df):
    """``--certification-map``, else the config's mapping of the rows' source (read only
    when some row lacks its own certification: the file may be checked offline)."""
    from cpf_deposit.sources.certmap import CertificationMap

    if args.certification_map is not None:
        return CertificationMap.from_csv(args.certification_map)  # exit 2 when unreadable
    if all(_filled(df, c) for c in ("certification_type", "certification_code")):
        return None
    from cpf_deposit.commands import config_from
    from cpf_deposit.pipeline import certification_map_of

    config = config_from(args)
    if args.source is not None:
        if args.source not in config.sources:
            known = ", ".join(config.sources) or "none"
            raise UsageError(f"--source {args.source}: no such source in the config ({known})")
        source = config.sources[args.source]
    else:
        systems = (
            set(df["source_system"].dropna().astype("str").str.strip().str.lower())
            if "source_system" in df
            else set()
        )
        matching = [s for s in config.sources.values() if s.system in systems]
        if len(matching) > 1:
            names = ", ".join(s.name for s in matching)
            raise UsageError(
                f"several sources of the config match the rows ({names}): give --source"
            )
        if not matching:
            print(
                "  aucune table de correspondance : pas de source de la configuration pour ces "
                "lignes (--source ou --certification-map)"
            )
            return None
        source = matching[0]
    cmap = certification_map_of(source)
    if cmap is None:
        print(f"  aucune table de correspondance pour la source {source.name}")
    return cmap


def _filled(df, column: str) -> bool:
    """Every row has a value in ``column``."""
    if column not in df:
        return False
    values = df[column].astype("str").str.strip()
    return bool((values.notna() & (values != "")).all())


def _rules(args: argparse.Namespace):
    """The rules under the config's quality policy (``quality.birth_name_punctuation``)."""
    from cpf_deposit.commands import config_from
    from cpf_deposit.quality.rules import rules_for

    return rules_for(config_from(args).quality)

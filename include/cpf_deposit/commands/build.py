"""``cpf-deposit build INPUT``: canonical passages (CSV or Parquet) to validated flux files."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError
from cpf_deposit.commands import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="write flux files from canonical passages and validate them",
        description="Stream canonical passages from a CSV or Parquet file into CDC flux "
        "files (split at the configured size and passage limits), then validate each "
        "file. Passages the XSD could not hold are listed, never truncated; the rest "
        "is written.",
    )
    p.add_argument("input", type=Path, metavar="INPUT", help="passages, .csv or .parquet")
    p.add_argument("--out", type=Path, help="output folder (default: <work>/flux)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.flux.build import build_from_file

    config = config_from(args)
    if not args.input.is_file():
        raise UsageError(f"no such input file: {args.input}")
    if args.input.suffix.lower() not in (".csv", ".parquet"):
        raise UsageError(f"{args.input.name}: expected a .csv or .parquet file")
    out = args.out or config.paths.work / "flux"
    result, unreadable = build_from_file(args.input, config, out)
    return print_build(result, unreadable)


def print_build(result, unreadable=()) -> int:
    """Per-file lines, refused passages (ids and fields only), then the summary line."""
    for wf, report in zip(result.files, result.reports, strict=True):
        state = "valid" if report.valid else f"INVALID ({len(report.errors)} errors)"
        certs = ", ".join(f"{c}: {n}" for c, n in sorted(wf.certifications.items()))
        print(f"{wf.path}  {wf.passages} passages  {wf.size:,} bytes  {state}  [{certs}]")
    refused = [*unreadable, *result.batch.refused]
    for r in refused:
        print(f"  refused {r}")
    ok = result.valid and not refused
    print(
        f"cpf-deposit build: {len(result.files)} file(s), {result.batch.passages} passages "
        f"written, {len(refused)} refused, "
        + ("all files valid" if result.valid else "some files INVALID")
    )
    return EXIT_OK if ok else EXIT_DATA

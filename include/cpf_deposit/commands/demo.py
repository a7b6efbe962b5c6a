"""``cpf-deposit demo``: the whole loop through the real DAGs, on the embedded default."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole loop on the embedded default (demo database, local folders)",
        description="Generate the demo Apogée database, start a real Airflow under "
        "var/airflow, unpause the annual deposit DAG (its catch-up runs every academic "
        "year since 2020-2021), answer every deposit form but the newest through the "
        "REST API, play the CDC, run the receipts DAG, stop Airflow, and print the "
        "reconciliation rate and where the flux files, quarantine, worklist and report "
        "are. Everything goes under var/; `make airflow` then opens the same state.",
    )
    p.add_argument("--dags", type=Path, default=Path("dags"), help="DAG folder (default: dags)")
    p.add_argument("--graduates", type=int, default=5000, metavar="N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.demo.loop import print_summary, run_demo

    if not (args.dags / "cpf_deposit.py").is_file():
        raise UsageError(f"no deposit DAG in {args.dags}: run from the repository root")
    if args.config:
        raise UsageError("the demo runs on the embedded default: drop --config")
    print_summary(run_demo(Path.cwd(), args.dags, args.graduates))
    return EXIT_OK

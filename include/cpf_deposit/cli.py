"""``cpf-deposit``: every pipeline step for operators working outside Airflow.

The DAG tasks call the same library functions. Each command lives in its own module
under :mod:`cpf_deposit.commands` and registers itself here. Exit codes: 0 all is
well, 1 problems found in the data, 2 usage or configuration error. Every command
ends with a one-line summary.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cpf_deposit.config import ConfigError

COMMAND_MODULES = (
    "cpf_deposit.commands.demo",
    "cpf_deposit.commands.build",
    "cpf_deposit.commands.validate",
    "cpf_deposit.commands.demo_data",
    "cpf_deposit.commands.extract",
    "cpf_deposit.commands.check",
    "cpf_deposit.commands.run",
    "cpf_deposit.commands.deposited",
    "cpf_deposit.commands.simulate_cdc",
    "cpf_deposit.commands.ingest_receipts",
    "cpf_deposit.commands.report",
)

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command was called with arguments it cannot work with."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpf-deposit",
        description="Feed the CPF Passeport de compétences: extract graduates, check "
        "identities, build and validate the CDC flux, stage it, reconcile the receipts.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="institution config (default: $CPF_DEPOSIT_CONFIG, else the shipped example)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on a usage error
    try:
        return int(args.func(args))
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"cpf-deposit {args.command}: stopped, configuration or usage error")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

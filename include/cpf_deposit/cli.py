"""``cpf-deposit``: every pipeline step for operators working outside Airflow.

The DAG tasks call the same library functions. Each command lives in its own module
under :mod:`cpf_deposit.commands` and registers itself here. Exit codes: 0 all is
well, 1 problems found in the data, 2 usage, configuration or environment error (the
``exit_code`` of :mod:`cpf_deposit.errors`). Every command ends with a one-line
summary; an expected failure (the package's errors, connections, disk, permissions,
encodings, corrupt input files, missing drivers: :func:`cpf_deposit.errors.describe_failure`)
is one line on stderr, never a traceback unless ``--debug``. Anything else is a bug and
shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cpf_deposit.errors import EXIT_DATA, EXIT_USAGE, KIND_TRANSIENT, UsageError, describe_failure

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

EXIT_OK = 0
TRANSIENT = KIND_TRANSIENT
__all__ = ["EXIT_DATA", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


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
    parser.add_argument("--debug", action="store_true", help="show the traceback of any failure")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on a usage error
    try:
        return int(args.func(args))
    except Exception as exc:
        failure = None if args.debug else describe_failure(exc, getattr(args, "input", None))
        if failure is None:
            raise  # a bug (or --debug): the traceback is what a developer needs
        print(f"error: {failure.message}", file=sys.stderr)
        print(f"cpf-deposit {args.command}: stopped, {failure.kind}")
        return failure.code


if __name__ == "__main__":
    sys.exit(main())

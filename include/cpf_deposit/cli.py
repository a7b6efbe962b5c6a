"""``cpf-deposit``: every pipeline step for operators working outside Airflow.

The DAG tasks call the same library functions. Each command lives in its own module
under :mod:`cpf_deposit.commands` and registers itself here. Exit codes: 0 all is
well, 1 problems found in the data, 2 usage, configuration or environment error (the
``exit_code`` of :mod:`cpf_deposit.errors`). Every command ends with a one-line
summary; an error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cpf_deposit.errors import EXIT_DATA, EXIT_USAGE, CpfError, UsageError, is_retryable

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
TRANSIENT = "environment error (database, disk or network), try again"
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
        if isinstance(exc, CpfError):
            code, kind = exc.exit_code, _kind(exc)
        elif is_retryable(exc):  # database unreachable, disk full: no traceback either
            code, kind = EXIT_USAGE, TRANSIENT
        else:
            raise  # a bug: the traceback is what a developer needs
        message = _one_line(exc) if isinstance(exc, CpfError) else _first_line(exc)
        print(f"error: {message}", file=sys.stderr)
        print(f"cpf-deposit {args.command}: stopped, {kind}")
        return code


def _kind(exc: CpfError) -> str:
    if exc.retryable:
        return TRANSIENT
    if exc.exit_code == EXIT_DATA:
        return "problem in the data"
    return "configuration or usage error"


def _first_line(exc: BaseException) -> str:
    """A driver's error: its first line only (later lines may quote SQL parameters)."""
    return (
        next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:300]
        or type(exc).__name__
    )


def _one_line(exc: BaseException) -> str:
    """The message on one line (a database error spans several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " / ".join(lines) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())

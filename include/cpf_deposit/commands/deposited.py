"""``cpf-deposit deposited FILE... --by NAME [--at WHEN] [--keep]``: record manual deposits.

Deposit on the CDC portal is manual, so a person tells the ledger. A file recorded
as deposited moves from the outbox to the archive folder (``--keep`` leaves it), and
its passages wait for the CDC's accusé de traitement. Recording the same file twice
is harmless.
"""

from __future__ import annotations

import argparse
import datetime as dt

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deposited",
        help="record that staged flux files were deposited on the CDC portal",
        description="Record the manual deposit of staged flux files (name, path, manifest "
        "or idFlux) and move them to the archive folder.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--by", required=True, metavar="NAME", help="who deposited the file(s)")
    p.add_argument(
        "--at",
        metavar="WHEN",
        help="when, ISO 8601 (default: now); a time without zone is in the institution's",
    )
    p.add_argument("--keep", action="store_true", help="leave the files in the outbox")
    p.set_defaults(func=run)


def _when(value: str | None, tz) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at: not an ISO 8601 date and time: {value!r}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.commands import config_from
    from cpf_deposit.ledger import LedgerError, open_ledger
    from cpf_deposit.staging import record_deposit

    if not args.by.strip():
        raise UsageError("--by: name the person who deposited the file")
    config = config_from(args)
    at = _when(args.at, config.tz)
    ledger = open_ledger(config)
    done = failed = passages = 0
    try:
        for name in args.files:
            try:
                rec = record_deposit(ledger, config, name, args.by, at=at, archive=not args.keep)
            except LedgerError as exc:
                failed += 1
                print(f"  ÉCHEC {name} : {exc}")
                continue
            done += 1
            passages += rec.passages
            print(
                f"  déposé {rec.file_name} (idFlux {rec.id_flux}, {rec.passages} passages) "
                f"par {rec.deposited_by}"
            )
    finally:
        ledger.dispose()
    print(f"cpf-deposit deposited: {done} file(s) recorded ({passages} passages), {failed} refused")
    return EXIT_DATA if failed else EXIT_OK

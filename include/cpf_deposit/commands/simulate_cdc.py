"""``cpf-deposit simulate-cdc FILE.xml...``: play the CDC on deposited files (demo only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_OK, UsageError
from cpf_deposit.commands import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate-cdc",
        help="play the Caisse des Dépôts on flux files and write receipts (demo and tests only)",
        description="FOR DEMOS AND TESTS ONLY. Validate each flux against the XSD (an "
        "XSD-error receipt on failure), match every passage against the demo civil-status "
        "register with the CDC's funnel, and write an accusé de traitement shaped like the "
        "real one into the inbox.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.xml")
    p.add_argument(
        "--register", type=Path, help="register (default: <base_dir>/demo/register.sqlite)"
    )
    p.add_argument("--inbox", type=Path, help="where receipts go (default: the configured inbox)")
    p.add_argument(
        "--loose",
        action="store_true",
        help="ignore punctuation in birth names (the change the CDC announced)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.simulator.cdc import CdcState, CivilRegister, simulate

    config = config_from(args)
    register_path = args.register or config.paths.base_dir / "demo" / "register.sqlite"
    if not register_path.is_file():
        raise UsageError(f"no register at {register_path}: run `cpf-deposit demo-data` first")
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    register = CivilRegister.from_sqlite(register_path, loose=args.loose)
    state = CdcState(config.paths.base_dir / "cdc-simulator" / "state.sqlite")
    inbox = args.inbox or config.paths.inbox
    accepted = rejected = 0
    try:
        for flux in args.files:
            o = simulate(flux, register, inbox, state, xsd_path=config.xsd_path)
            accepted += o.accepted
            rejected += o.rejected
            state_text = (
                f"rejeté (XSD, {o.xsd_errors} erreurs)"
                if o.xsd_errors
                else f"{o.accepted} acceptés, {o.rejected} rejetés"
            )
            print(f"{flux.name}: {state_text} -> {o.receipt}")
    finally:
        state.close()
    total = accepted + rejected
    rate = f"{100 * accepted / total:.2f} %" if total else "n/a"
    print(
        f"cpf-deposit simulate-cdc: {len(args.files)} file(s), {accepted} accepted, "
        f"{rejected} rejected, reconciliation {rate} (simulated)"
    )
    return EXIT_OK

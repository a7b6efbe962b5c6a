"""``cpf-deposit demo-data``: write the synthetic Apogée database and its register.

Deterministic per seed. Exit 0 when written, 2 on a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.config import load_config


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo-data",
        help="write a synthetic Apogée database, its certification mapping and register",
        description="Write apogee.sqlite (Apogée tables with injected data errors), "
        "certification_map.csv and register.sqlite (civil-status register and the ground "
        "truth of the injected errors), all mode 0600.",
    )
    p.add_argument("--graduates", type=_positive, default=2000, metavar="N")
    p.add_argument("--seed", type=int, default=1, metavar="S")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <base_dir>/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.cli import EXIT_OK
    from cpf_deposit.demo.build import write_demo

    out = Path(args.out) if args.out else load_config(args.config).paths.base_dir / "demo"
    files = write_demo(out, args.graduates, args.seed)
    print(f"Base Apogée : {files.apogee}")
    print(f"Table de correspondance : {files.mapping}")
    print(f"Registre d'état civil : {files.register}")
    print(f"Connexion : AIRFLOW_CONN_APOGEE_DB='sqlite://{files.apogee.resolve()}'")
    print(
        f"cpf-deposit demo-data: {files.persons} personnes, {files.results} résultats, "
        f"{files.register_rows} identités au registre, {files.injected} erreurs injectées "
        f"en {files.seconds:.1f} s"
    )
    return EXIT_OK

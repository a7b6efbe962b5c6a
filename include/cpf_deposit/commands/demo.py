"""``cpf-deposit demo``: the main job on the embedded default, for a first look."""

from __future__ import annotations

import argparse

from cpf_deposit.commands import config_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded default (demo data, local folders)",
        description="Build a flux from the built-in demo passages with the example "
        "config, validate it, and print where it is and what it holds.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.commands.build import print_build
    from cpf_deposit.flux.build import build_flux
    from cpf_deposit.flux.writer import Header
    from cpf_deposit.samples import sample_passages

    config = config_from(args)
    out = config.paths.work / "flux"
    print(f"Institution: {config.institution_name} (UAI {config.uai}), demo passages")
    result = build_flux(
        sample_passages(),
        Header.from_config(config),
        out,
        tz=config.tz,
        xsd_path=config.xsd_path,
        max_bytes=config.limits.max_file_bytes,
        max_passages=config.limits.max_passages_per_file,
        parallel=False,
    )
    return print_build(result)

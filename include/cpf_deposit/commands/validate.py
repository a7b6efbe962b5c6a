"""``cpf-deposit validate FILE... [--xsd PATH]``: check flux files before deposit."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpf_deposit.cli import EXIT_DATA, EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="validate flux files against the XSD and the CDC rules the XSD leaves out",
        description="Validate flux files (streaming): XSD errors with line, column and "
        "idTechnique, explained in French and English, plus the CDC rules the XSD does "
        "not check. Exit 1 when a file must not be deposited.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--xsd", type=Path, help="XSD to validate against (default: shipped 1.1.2)")
    p.add_argument("--lang", choices=("fr", "en"), default="fr", help="language of explanations")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpf_deposit.flux.validator import validate_file

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    if args.xsd is not None and not args.xsd.is_file():
        raise UsageError(f"no such XSD: {args.xsd}")
    bad = 0
    total = 0
    for path in args.files:
        report = validate_file(path, args.xsd)
        total += report.passages
        print(report.summary())
        for issue in report.issues:
            where = f"line {issue.line}" if issue.line else "file"
            who = f" [{issue.technical_id}]" if issue.technical_id else ""
            text = issue.explanation_fr if args.lang == "fr" else issue.explanation_en
            print(f"  {issue.severity.upper():7} {where}{who} {issue.rule}: {text}")
        bad += not report.valid
    verdict = "all valid" if not bad else f"{bad} invalid, do not deposit"
    print(f"cpf-deposit validate: {len(args.files)} file(s), {total} passages, {verdict}")
    return EXIT_DATA if bad else EXIT_OK

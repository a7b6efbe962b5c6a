"""Score the identity gate against the demo's injected errors.

``python -m cpf_deposit.quality.report [--graduates N] [--seed S] [--out DIR]`` builds a
demo Apogée database (:func:`cpf_deposit.demo.build.write_demo`), extracts the
canonical rows of the awards since 2021-07-01 with the shipped Apogée query, applies
the demo certification mapping, runs the gate and prints, per rule and overall,
precision and recall against the ground truth table ``injected_error``.

Scoring is per person (the ground truth is keyed by COD_IND, the canonical
``source_person_id``): a rule fires on a person when it fires on any of their awards;
it is right when the person carries one of the error types the rule targets. An
injected change that leaves the CDC key unchanged (Œ written OE: the register folds
it too) is no error and is not counted. "Fixable" errors are those the source data
carries a trace of (:data:`FIXABLE`); typos, transliterations, wrong years or days,
absence from the register and dropped first names leave none.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cpf_deposit.quality.names import cdc_key
from cpf_deposit.quality.rules import BLOCK, RULES, Rule

FIXABLE = frozenset(
    {
        "name_inverted",
        "sex_wrong",
        "first_names_merged",
        "compound_first_name_unhyphenated",
        "birth_name_punctuation",
        "birth_day_month_nil",
        "birth_commune_nil",
    }
)
# birth_commune_wrong is fixable only when a postal code was typed as the INSEE code.
_POSTAL_VARIANT = ("birth_commune_wrong", "COD_COM_NAI_ETU")
NAME_FIELDS = {
    "LIB_NOM_PAT_IND": "birth_name",
    "LIB_PR1_IND": "first_name_1",
}


@dataclass
class RuleScore:
    rule: Rule
    fired: int
    true_positives: int
    targets: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.fired if self.fired else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.targets if self.targets else None


@dataclass
class Score:
    rules: list[RuleScore]
    persons: int
    fixable: int
    fixable_caught: int
    blocked: int
    blocked_right: int
    by_error: dict[str, tuple[int, int]]  # error type -> (persons, caught)

    @property
    def recall(self) -> float:
        return self.fixable_caught / self.fixable if self.fixable else 1.0

    @property
    def block_precision(self) -> float:
        return self.blocked_right / self.blocked if self.blocked else 1.0

    def rule(self, rule_id: str) -> RuleScore:
        return next(s for s in self.rules if s.rule.id == rule_id)


def effective_truth(truth: pd.DataFrame, canonical: pd.DataFrame) -> pd.DataFrame:
    """(record_key, error_type) pairs that really change what the CDC compares, among
    the persons of the batch; postal-code commune errors marked fixable."""
    persons = canonical.drop_duplicates("source_person_id").set_index("source_person_id")
    t = truth[truth["record_key"].isin(persons.index)].copy()
    keep = pd.Series(True, index=t.index)
    for field, column in NAME_FIELDS.items():
        sel = t["field"] == field
        if sel.any():
            now = persons.loc[t.loc[sel, "record_key"], column].to_numpy()
            before = t.loc[sel, "original_value"].to_numpy()
            same = [
                isinstance(a, str) and isinstance(b, str) and cdc_key(a) == cdc_key(b)
                for a, b in zip(now, before, strict=True)
            ]
            keep.loc[sel] = ~pd.Series(same, index=t.index[sel])
    t = t[keep]
    postal = t[(t["error_type"] == _POSTAL_VARIANT[0]) & (t["field"] == _POSTAL_VARIANT[1])]
    postal_keys = set(postal["record_key"])
    label = t[(t["error_type"] == _POSTAL_VARIANT[0]) & (t["field"] != _POSTAL_VARIANT[1])]
    pairs = t[["record_key", "error_type"]].drop_duplicates()
    pairs["fixable"] = pairs["error_type"].isin(FIXABLE) | (
        (pairs["error_type"] == _POSTAL_VARIANT[0])
        & pairs["record_key"].isin(postal_keys - set(label["record_key"]))
    )
    return pairs


def score(verdicts: pd.DataFrame, findings: pd.DataFrame, truth_pairs: pd.DataFrame) -> Score:
    """Per-rule and overall precision/recall (see the module docstring)."""
    person_of_row = verdicts.set_index("row")["source_person_id"]
    f = findings.assign(person=findings["row"].map(person_of_row))
    fired_by_rule = f.groupby("rule_id")["person"].agg(set).to_dict()
    errors = truth_pairs.groupby("error_type")["record_key"].agg(set).to_dict()
    rules = []
    for r in RULES:
        fired = fired_by_rule.get(r.id, set())
        target = set().union(*(errors.get(t, set()) for t in r.targets)) if r.targets else set()
        rules.append(RuleScore(r, len(fired), len(fired & target), len(target)))

    caught_by_type: dict[str, set] = {}
    for r in RULES:
        for t in r.targets:
            caught_by_type.setdefault(t, set()).update(fired_by_rule.get(r.id, set()))
    fixable = truth_pairs[truth_pairs["fixable"]]
    hit = [
        key in caught_by_type.get(err, set())
        for key, err in fixable[["record_key", "error_type"]].itertuples(index=False)
    ]
    by_error = {}
    for err, keys in errors.items():
        by_error[err] = (len(keys), len(keys & caught_by_type.get(err, set())))

    # BLOCK precision: persons blocked by identity rules (rules with targets), right
    # when they carry an error targeted by one of the blocking rules that fired.
    identity_block = [r for r in RULES if r.severity == BLOCK and r.targets]
    blocked: dict[str, set[str]] = {}
    for r in identity_block:
        for p in fired_by_rule.get(r.id, set()):
            blocked.setdefault(p, set()).update(r.targets)
    person_errors = truth_pairs.groupby("record_key")["error_type"].agg(set).to_dict()
    right = sum(1 for p, t in blocked.items() if person_errors.get(p, set()) & t)
    return Score(
        rules=rules,
        persons=int(verdicts["source_person_id"].nunique()),
        fixable=len(fixable),
        fixable_caught=int(sum(hit)),
        blocked=len(blocked),
        blocked_right=right,
        by_error=by_error,
    )


def demo_canonical(
    out_dir: str | Path, graduates: int, seed: int, today: dt.date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """(canonical rows of awards from 2021-07-01 to today, injected_error, mapping CSV).

    The rows are read with the shipped query, the NIR consumed at once into its facts
    (as the extraction does): it never reaches the gate."""
    from cpf_deposit.demo.build import write_demo
    from cpf_deposit.sources.nir import facts_frame
    from cpf_deposit.sources.sql import query_for

    today = today or dt.date.today()
    files = write_demo(out_dir, graduates, seed)
    with sqlite3.connect(files.apogee) as conn:
        canonical = pd.read_sql_query(
            query_for("apogee", "sqlite"),
            conn,
            params={
                "date_from": "2021-07-01",
                "date_to": (today + dt.timedelta(days=1)).isoformat(),
            },
        )
    canonical = facts_frame(canonical, today=today)
    with sqlite3.connect(files.register) as conn:
        truth = pd.read_sql_query("SELECT * FROM injected_error", conn)
    return canonical, truth, files.mapping


def evaluate_demo(graduates: int, seed: int, out: Path | None = None, use_gx: bool = True):
    """Build a demo, run the gate, score it. Returns (GateResult, Score)."""
    from cpf_deposit.quality.gate import run_gate
    from cpf_deposit.sources.certmap import CertificationMap

    with tempfile.TemporaryDirectory(prefix="cpf-quality-") as tmp:
        canonical, truth, mapping = demo_canonical(tmp, graduates, seed)
        cmap = CertificationMap.from_csv(mapping)
    from cpf_deposit.config import QualityPolicy
    from cpf_deposit.quality.rules import rules_for

    rules = rules_for(QualityPolicy())  # as shipped: the example config's policy
    result = run_gate(canonical, certification_map=cmap, use_gx=use_gx, rules=rules)
    if out is not None:
        from cpf_deposit.quality.outputs import write_all

        write_all(result, out)
    return result, score(result.verdicts, result.findings, effective_truth(truth, canonical))


def _pct(x: float | None) -> str:
    return "   - " if x is None else f"{100 * x:5.1f}"


def format_score(s: Score) -> str:
    lines = [
        f"{'rule':5} {'sev':5} {'name':32} {'fired':>6} {'TP':>5} {'prec%':>6} {'rec%':>6}",
    ]
    for rs in s.rules:
        lines.append(
            f"{rs.rule.id:5} {rs.rule.severity:5} {rs.rule.name:32} {rs.fired:6d} "
            f"{rs.true_positives:5d} {_pct(rs.precision):>6} {_pct(rs.recall):>6}"
        )
    lines.append("")
    lines.append(f"{'injected error type':34} {'persons':>7} {'caught%':>8}")
    for err, (n, caught) in sorted(s.by_error.items()):
        mark = "*" if err in FIXABLE or err == _POSTAL_VARIANT[0] else " "
        lines.append(f"{err:33}{mark} {n:7d} {_pct(caught / n if n else None):>8}")
    lines.append("(* fixable: the source data carries a trace; commune errors: postal codes only)")
    lines.append("")
    lines.append(
        f"overall: {s.persons} persons, recall of fixable errors {_pct(s.recall)} % "
        f"({s.fixable_caught}/{s.fixable}), BLOCK precision {_pct(s.block_precision)} % "
        f"({s.blocked_right}/{s.blocked})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpf_deposit.quality.report",
        description="Run the identity gate on a demo database and score it against the "
        "injected errors (precision and recall per rule and overall).",
    )
    parser.add_argument("--graduates", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="also write the gate's outputs here")
    parser.add_argument(
        "--independent-graduates",
        type=int,
        default=10_000,
        help="size of the independent error model's database (0: demo only)",
    )
    args = parser.parse_args(argv)
    result, s = evaluate_demo(args.graduates, args.seed, args.out)
    print("== 1. The demo's own injected errors (the model the rules were tuned on) ==")
    print(format_score(s))
    print(result.summary())
    if args.independent_graduates:
        from cpf_deposit.quality.independent_score import (
            evaluate_independent,
            format_independent,
        )

        independent = evaluate_independent(args.independent_graduates, args.seed)
        print()
        print("== 2. An independently built error model and CDC stand-in ==")
        print(format_independent(independent))
        print()
        print(punctuation_costs(independent))
    return 0


def punctuation_costs(score) -> str:
    """What each ``quality.birth_name_punctuation`` policy costs, on the independent
    model: R05D's rows, how many are truly wrong, how many the CDC would reject."""
    r05d = next((r for r in score.rules if r.rule_id == "R05D"), None)
    if r05d is None or not r05d.rows:
        return "birth_name_punctuation: R05D did not fire on the independent model."
    return (
        f"birth_name_punctuation (R05D, {r05d.rows} rows): 'send' lets {r05d.rejected} "
        f"rejections through ({100 * r05d.rejected / r05d.rows:.0f} % of its rows); 'hold' "
        f"quarantines {r05d.rows - r05d.wrong} rows that were right "
        f"({100 * (r05d.rows - r05d.wrong) / r05d.rows:.0f} %) for the office to check."
    )


if __name__ == "__main__":
    sys.exit(main())

"""Score the identity gate on errors it was not tuned to (the independent error model).

``python -m cpf_deposit.quality.independent_score [--graduates N] [--seed S]`` builds the
clean demo population, applies :mod:`cpf_deposit.demo.independent` (errors written from
the CDC's published material, not from the gate's rules), runs the project's real
extraction (:func:`cpf_deposit.sources.extract.extract`, through an Airflow connection
to the SQLite file, as in production) and real gate
(:func:`cpf_deposit.quality.gate.run_gate`), and judges every passage with the CDC
stand-in (:mod:`cpf_deposit.demo.sngi_standin`) as it would be sent.

Unit: a row is a passage the extraction produced (one award of one source record); a
duplicated person is two records. Figures (all computed here):

* per kind: rows, share the stand-in rejects when sent as is, share flagged (BLOCK or
  WARN), share blocked;
* BLOCK precision twice: the row is truly wrong (its kind contradicts the civil
  status), and the row would really have been rejected by the stand-in;
* share of clean rows (no kind) given a WARN or a BLOCK;
* rejection rate of what the gate lets through (OK and WARN) against sending all, and
  the rows blocked that the CDC would have accepted (certifications held back).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cpf_deposit.demo.independent import KINDS, NONE
from cpf_deposit.demo.sngi_standin import REJECTED, Policy

WINDOW_START = dt.date(2021, 7, 1)
_CONN_ID = "cpf_independent_score"
BLOCK, WARN, OK = "BLOCK", "WARN", "OK"


@dataclass
class KindScore:
    kind: str
    persons: int
    rows: int
    rejected: int  # rejected by the stand-in when sent as is
    flagged: int  # BLOCK or WARN
    blocked: int
    rejected_flagged: int  # of the rejected, flagged
    rejected_blocked: int  # of the rejected, blocked

    def share(self, count: int) -> float | None:
        return count / self.rows if self.rows else None

    @property
    def wrong(self) -> bool:
        return KINDS[self.kind].wrong if self.kind in KINDS else False


@dataclass
class RuleScore:
    rule_id: str
    severity: str
    rows: int
    wrong: int  # rows of a wrong kind
    rejected: int  # rows the stand-in rejects as is
    clean: int  # rows without any kind


@dataclass
class IndependentScore:
    graduates: int
    seed: int
    policy: str
    persons: int
    records: int  # INDIVIDU rows (duplicates included)
    not_exported: int  # canonical rows with no passage (unmapped diploma, no award date)
    kinds: list[KindScore]
    rules: list[RuleScore]
    rows: int
    rejected_all: int  # rows rejected if every passage is sent as is
    blocked: int
    warned: int
    blocked_wrong: int
    blocked_rejected: int
    sent: int  # rows the gate lets through (OK and WARN)
    rejected_sent: int  # of those, rejected by the stand-in
    blocked_accepted: int  # blocked rows the stand-in would have accepted
    clean_rows: int
    clean_flagged: int
    clean_blocked: int
    misattributed: int  # accepted for somebody else, when sent as is
    rejected_flagged: int  # rows rejected as is that the gate flags (WARN or BLOCK)
    recoverable: int  # rows rejected as is whose error is in the source (not the SNGI's)
    recoverable_flagged: int
    recoverable_blocked: int
    clean_by_nir: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # NIR state -> (clean rows, flagged, blocked)
    messages: dict[str, int] = field(default_factory=dict)  # CDC message -> rows, as is
    undetectable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def block_precision_wrong(self) -> float | None:
        return self.blocked_wrong / self.blocked if self.blocked else None

    @property
    def block_precision_rejected(self) -> float | None:
        return self.blocked_rejected / self.blocked if self.blocked else None

    @property
    def rejection_rate_all(self) -> float | None:
        return self.rejected_all / self.rows if self.rows else None

    @property
    def rejection_rate_sent(self) -> float | None:
        return self.rejected_sent / self.sent if self.sent else None

    @property
    def recoverable_recall(self) -> float | None:
        """Share of the source-side rejections the gate flags (WARN or BLOCK)."""
        return self.recoverable_flagged / self.recoverable if self.recoverable else None

    @property
    def clean_flagged_share(self) -> float | None:
        return self.clean_flagged / self.clean_rows if self.clean_rows else None

    @property
    def clean_blocked_share(self) -> float | None:
        return self.clean_blocked / self.clean_rows if self.clean_rows else None

    @property
    def rejections_caught(self) -> float | None:
        """Share of the rejections (as is) the gate blocks."""
        return (
            (self.rejected_all - self.rejected_sent) / self.rejected_all
            if self.rejected_all
            else None
        )

    def kind(self, name: str) -> KindScore:
        return next(k for k in self.kinds if k.kind == name)


@contextlib.contextmanager
def _airflow_connection(db: Path, home: Path) -> Iterator[str]:
    """An Airflow connection (environment variable) to ``db`` for the real extraction;
    a throwaway Airflow home unless one is set. Restores the environment."""
    saved = {k: os.environ.get(k) for k in (f"AIRFLOW_CONN_{_CONN_ID.upper()}", "AIRFLOW_HOME")}
    os.environ[f"AIRFLOW_CONN_{_CONN_ID.upper()}"] = f"sqlite://{db.resolve()}"
    if saved["AIRFLOW_HOME"] is None:
        os.environ["AIRFLOW_HOME"] = str(home)
    try:
        yield _CONN_ID
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_independent(
    graduates: int,
    seed: int,
    work: Path,
    *,
    today: dt.date | None = None,
    use_gx: bool = True,
    policy: Policy | None = None,
    rates: dict[str, float] | None = None,
):
    """Build, extract, gate and judge under ``work``. Returns (frame of rows, files,
    truth, gate result): the frame joins each passage with its kind, verdict, rules and
    the stand-in's outcome."""
    import pandas as pd

    from cpf_deposit.config import QualityPolicy
    from cpf_deposit.demo.independent import read_truth, write_independent
    from cpf_deposit.demo.sngi_standin import SngiStandIn
    from cpf_deposit.quality.gate import run_gate
    from cpf_deposit.quality.rules import rules_for
    from cpf_deposit.sources.certmap import CertificationMap
    from cpf_deposit.sources.extract import extract

    today = today or dt.date.today()
    files = write_independent(work / "source", graduates, seed, rates)
    with _airflow_connection(files.apogee, work / "airflow") as conn_id:
        extract(
            "apogee",
            conn_id,
            WINDOW_START,
            today,
            work / "passages.parquet",
            id_key=bytes(32),
            certification_map=files.mapping,
            canonical_out=work / "canonical.parquet",
            issues_out=work / "issues.csv",
        )
    passages = pd.read_parquet(work / "passages.parquet")
    canonical = pd.read_parquet(work / "canonical.parquet")
    result = run_gate(
        canonical,
        today=today,
        certification_map=CertificationMap.from_csv(files.mapping),
        use_gx=use_gx,
        rules=rules_for(QualityPolicy()),  # as shipped: the example config's policy
    )
    truth = read_truth(files.truth)
    stand_in = SngiStandIn(truth, seed, policy)

    person = canonical[["source_record_key", "source_person_id"]]
    sent = passages.merge(person, on="source_record_key", how="left")
    judged = stand_in.judge(sent)
    verdicts = result.verdicts[["source_record_key", "verdict", "rule_ids"]]
    kinds = truth.assign(source_person_id=truth["cod_ind"].astype(str))[
        ["source_person_id", "person_id", "kind", "variant", "wrong", "side", "nir_state"]
    ]
    rows = (
        sent[["source_record_key", "source_person_id"]]
        .merge(kinds, on="source_person_id", how="left", validate="many_to_one")
        .merge(verdicts, on="source_record_key", how="left", validate="one_to_one")
        .merge(judged, on="source_record_key", how="left", validate="one_to_one")
    )
    rows["not_exported"] = len(canonical) - len(passages)
    return rows, files, truth, result


def score_rows(
    rows, truth, graduates: int, seed: int, policy: Policy, records: int, severities: dict
):
    """The figures of :class:`IndependentScore` from the joined rows; ``severities``:
    rule id -> severity, as the gate's findings give them."""
    rejected = rows["outcome"] == REJECTED
    blocked = rows["verdict"] == BLOCK
    warned = rows["verdict"] == WARN
    flagged = blocked | warned
    clean = rows["kind"] == NONE
    persons_by_kind = truth[truth["role"] == "original"].groupby("kind")["person_id"].nunique()
    kinds = []
    for name in [NONE, *KINDS]:
        sel = rows["kind"] == name
        kinds.append(
            KindScore(
                name,
                int(persons_by_kind.get(name, 0)),
                int(sel.sum()),
                int((sel & rejected).sum()),
                int((sel & flagged).sum()),
                int((sel & blocked).sum()),
                int((sel & rejected & flagged).sum()),
                int((sel & rejected & blocked).sum()),
            )
        )
    exploded = rows.assign(rule_id=rows["rule_ids"].fillna("").str.split(";")).explode("rule_id")
    exploded = exploded[exploded["rule_id"].astype(bool)]
    rules = []
    for rule_id, g in exploded.groupby("rule_id", sort=True):
        rules.append(
            RuleScore(
                str(rule_id),
                str(severities.get(rule_id, "?")),
                len(g),
                int(g["wrong"].sum()),
                int((g["outcome"] == REJECTED).sum()),
                int((g["kind"] == NONE).sum()),
            )
        )
    messages = Counter(rows.loc[rejected, "message"].astype(str))
    source_side = rejected & (rows["side"] == "source")
    clean_by_nir = {
        str(state): (len(g), int((g["verdict"] != OK).sum()), int((g["verdict"] == BLOCK).sum()))
        for state, g in rows[clean].groupby("nir_state", sort=True)
    }
    return IndependentScore(
        graduates=graduates,
        seed=seed,
        policy=policy.describe(),
        persons=int(truth.loc[truth["role"] == "original", "person_id"].nunique()),
        records=records,
        not_exported=int(rows["not_exported"].iloc[0]) if len(rows) else 0,
        kinds=kinds,
        rules=rules,
        rows=len(rows),
        rejected_all=int(rejected.sum()),
        blocked=int(blocked.sum()),
        warned=int(warned.sum()),
        blocked_wrong=int((blocked & rows["wrong"].astype(bool)).sum()),
        blocked_rejected=int((blocked & rejected).sum()),
        sent=int((~blocked).sum()),
        rejected_sent=int((~blocked & rejected).sum()),
        blocked_accepted=int((blocked & ~rejected).sum()),
        clean_rows=int(clean.sum()),
        clean_flagged=int((clean & flagged).sum()),
        clean_blocked=int((clean & blocked).sum()),
        misattributed=int(rows["misattributed"].astype(bool).sum()),
        rejected_flagged=int((rejected & flagged).sum()),
        recoverable=int(source_side.sum()),
        recoverable_flagged=int((source_side & flagged).sum()),
        recoverable_blocked=int((source_side & blocked).sum()),
        clean_by_nir=clean_by_nir,
        messages=dict(messages.most_common()),
        undetectable=[(k.name, k.reason) for k in KINDS.values() if k.detectable == "no"],
    )


def evaluate_independent(
    graduates: int,
    seed: int,
    *,
    today: dt.date | None = None,
    use_gx: bool = True,
    policy: Policy | None = None,
    rates: dict[str, float] | None = None,
    work: str | Path | None = None,
) -> IndependentScore:
    """Build the clean demo, apply the independent errors, extract, gate, judge, score.

    ``work`` keeps the files (database, truth, Parquet) there; by default they go to a
    temporary folder removed afterwards.
    """
    policy = policy or Policy()
    with tempfile.TemporaryDirectory(prefix="cpf-independent-") as tmp:
        folder = Path(work) if work is not None else Path(tmp)
        rows, files, truth, result = run_independent(
            graduates, seed, folder, today=today, use_gx=use_gx, policy=policy, rates=rates
        )
        severities = dict(zip(result.findings["rule_id"], result.findings["severity"], strict=True))
        return score_rows(rows, truth, graduates, seed, policy, files.records, severities)


def _pct(x: float | None) -> str:
    return "    -" if x is None else f"{100 * x:5.1f}"


def format_independent(s: IndependentScore) -> str:
    """A text table, French and English headings, counts and shares only."""
    lines = [
        "Contrôle d'identité sur un modèle d'erreurs indépendant / "
        "identity gate on an independent error model",
        f"{s.graduates} diplômés/graduates, seed {s.seed}; {s.persons} personnes/persons, "
        f"{s.records} fiches/records, {s.rows} passages (+{s.not_exported} non exportés/"
        "not exported)",
        f"CDC stand-in: {s.policy}",
        "",
        f"{'genre / kind':31} {'faux':>4} {'pers.':>5} {'rows':>5} {'rej%':>6} "
        f"{'flag%':>6} {'block%':>6} {'rej.flag%':>9}",
        f"{'':31} {'wrong':>4} {'':>5} {'':>5} {'as is':>6} {'W|B':>6} {'':>6} {'(of rej.)':>9}",
    ]
    for k in s.kinds:
        wrong = "-" if k.kind == NONE else ("oui" if k.wrong else "non")
        rej_flag = k.rejected_flagged / k.rejected if k.rejected else None
        lines.append(
            f"{k.kind:31} {wrong:>4} {k.persons:5d} {k.rows:5d} {_pct(k.share(k.rejected)):>6} "
            f"{_pct(k.share(k.flagged)):>6} {_pct(k.share(k.blocked)):>6} {_pct(rej_flag):>9}"
        )
    lines += [
        "",
        f"{'règle / rule':12} {'sev':5} {'rows':>5} {'wrong%':>7} {'rej%':>6} {'clean%':>7}",
    ]
    for r in s.rules:
        lines.append(
            f"{r.rule_id:12} {r.severity:5} {r.rows:5d} {_pct(r.wrong / r.rows):>7} "
            f"{_pct(r.rejected / r.rows):>6} {_pct(r.clean / r.rows):>7}"
        )
    lines += [
        "",
        f"BLOCK : {s.blocked} passages; précision (fiche réellement fausse / row truly "
        f"wrong) {_pct(s.block_precision_wrong)} % ({s.blocked_wrong}/{s.blocked}); "
        f"précision (vraiment rejetée / would really be rejected) "
        f"{_pct(s.block_precision_rejected)} % ({s.blocked_rejected}/{s.blocked})",
        f"WARN : {s.warned} passages",
        f"fiches propres signalées / clean rows flagged: {_pct(s.clean_flagged_share)} % "
        f"({s.clean_flagged}/{s.clean_rows}), bloquées/blocked "
        f"{_pct(s.clean_blocked_share)} % ({s.clean_blocked}/{s.clean_rows}); par NIR / "
        "by NIR: "
        + ", ".join(
            f"{state} {flagged}/{n} ({blocked} BLOCK)"
            for state, (n, flagged, blocked) in s.clean_by_nir.items()
        ),
        f"rejets signalés / rejections flagged: {s.rejected_flagged}/{s.rejected_all}; "
        f"dont erreurs de la source / of which source errors (not the SNGI's): "
        f"{_pct(s.recoverable_recall)} % flagged ({s.recoverable_flagged}/{s.recoverable}), "
        f"{s.recoverable_blocked} blocked",
        f"taux de rejet CDC / CDC rejection rate: tout envoyer / send all "
        f"{_pct(s.rejection_rate_all)} % ({s.rejected_all}/{s.rows}); après contrôle / "
        f"after the gate {_pct(s.rejection_rate_sent)} % ({s.rejected_sent}/{s.sent})",
        f"rejets évités / rejections avoided: {_pct(s.rejections_caught)} %; "
        f"bloqués mais acceptés par la CDC / blocked but the CDC would accept: "
        f"{s.blocked_accepted}; attribués à un autre / matched to someone else: "
        f"{s.misattributed}",
        "",
        "motifs de rejet (tout envoyé) / rejection messages (send all):",
    ]
    for message, count in s.messages.items():
        lines.append(f"  {count:5d}  {message}")
    lines += ["", "indétectables avant dépôt / undetectable before deposit:"]
    for name, reason in s.undetectable:
        k = next((x for x in s.kinds if x.kind == name), None)
        flagged = _pct(k.share(k.flagged)) if k else "    -"
        lines.append(f"  {name:28} flag {flagged} %  {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpf_deposit.quality.independent_score",
        description="Score the identity gate on the independent error model and CDC "
        "stand-in (counts and shares only).",
    )
    parser.add_argument("--graduates", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--loose", action="store_true", help="announced birth-name rule")
    parser.add_argument("--prenoms-b", action="store_true", help="hypothesis B for prénoms 2/3")
    parser.add_argument("--no-gx", action="store_true", help="run the rules without GX")
    args = parser.parse_args(argv)
    policy = Policy(
        birth_name="loose" if args.loose else "strict", prenoms_2_3="B" if args.prenoms_b else "A"
    )
    score = evaluate_independent(
        args.graduates, args.seed, today=args.today, use_gx=not args.no_gx, policy=policy
    )
    print(format_independent(score))
    return 0


if __name__ == "__main__":
    sys.exit(main())

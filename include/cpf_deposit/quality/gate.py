"""The identity gate: the rules as one Great Expectations suite, and a verdict per row.

Flow: :func:`~cpf_deposit.quality.prepare.prepare` adds the derived ``q_*`` columns;
the suite ``cpf_identity_gate`` holds one custom multicolumn expectation per rule
(``expect_passages_to_pass_identity_rule``, vectorised pandas, reading exactly the
rule's columns) and runs on an ephemeral GX context (nothing written); the failing
row indices of each expectation give, per passage, the rule ids that fired and the
verdict: ``BLOCK`` (quarantined, not sent) if any blocking rule fired, else ``WARN``
(sent and listed) if any rule fired, else ``OK``.

Great Expectations is imported inside functions only, so importing this module (a
DAG file does) stays fast. Its loggers are set to WARNING before it is first imported
(:func:`_quiet_gx`): at import it logs some 220 INFO lines ("Skipping registering
function ...") that would bury the gate's own line in the task log.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from cpf_deposit.progress import Progress
from cpf_deposit.quality.prepare import prepare
from cpf_deposit.quality.rules import BLOCK, NOTE, OK, RULE_BY_ID, RULES, WARN, Rule

log = logging.getLogger(__name__)

SUITE_NAME = "cpf_identity_gate"
METRIC = "multicolumn_values.cpf_identity_rule_passes"
RULE_SEPARATOR = ";"


@dataclass
class GateResult:
    """Verdicts (one row per passage), findings (one row per passage and rule)."""

    # row, source_record_key, source_person_id, verdict, rule_ids (BLOCK and WARN rules:
    # what decided the verdict), notes (NOTE rules: policy notes, no bearing on it)
    verdicts: pd.DataFrame
    findings: pd.DataFrame  # row, source_record_key, rule_id, severity, message, fix
    prepared: pd.DataFrame = field(repr=False)
    fired: dict[str, int] = field(default_factory=dict)  # rule id -> rows
    gx_success: bool | None = None
    gx_statistics: dict = field(default_factory=dict)
    seconds: float = 0.0
    engine: str = "great_expectations"

    @property
    def counts(self) -> dict[str, int]:
        v = self.verdicts["verdict"].value_counts()
        return {k: int(v.get(k, 0)) for k in (OK, WARN, BLOCK)}

    def summary(self) -> str:
        """One line in French, counts and rule ids only (no personal data): the same
        words as the task log's step line, plus the time taken."""
        from cpf_deposit.summaries import summary_line

        return summary_line("gate", {**self.counts, "fired": self.fired, "seconds": self.seconds})


# GX's root logger, and one module that sets its own logger to INFO when imported.
_GX_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")


def _quiet_gx() -> None:
    """No analytics, and GX's INFO chatter kept out of the logs. Call it before the
    first GX import (the "Skipping registering function" lines come at import) and
    again after it (a GX module resets its own logger to INFO when imported)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in _GX_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@cache
def expectation_class():
    """The custom GX expectation class (defined once, on first use: GX import is slow)."""
    _quiet_gx()
    from typing import ClassVar, Literal

    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import MulticolumnMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        MulticolumnMapMetricProvider,
        multicolumn_condition_partial,
    )

    class MulticolumnValuesPassIdentityRule(MulticolumnMapMetricProvider):
        condition_metric_name = METRIC
        condition_domain_keys = (
            "batch_id",
            "table",
            "column_list",
            "row_condition",
            "condition_parser",
            "ignore_row_if",
        )
        condition_value_keys = ("rule_id",)

        @multicolumn_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column_list, rule_id, **kwargs):
            rule = RULE_BY_ID[rule_id]
            return ~rule.evaluate(column_list)

    class ExpectPassagesToPassIdentityRule(MulticolumnMapExpectation):
        """Every passage passes one identity-gate rule (cpf_deposit.quality.rules)."""

        rule_id: str
        ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"
        map_metric: ClassVar[str] = METRIC
        success_keys: ClassVar[tuple[str, ...]] = ("mostly", "rule_id")

    return ExpectPassagesToPassIdentityRule


def build_suite(rules: tuple[Rule, ...] = RULES):
    """The GX expectation suite of the gate (one expectation per rule)."""
    _quiet_gx()
    import great_expectations as gx

    cls = expectation_class()
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for rule in rules:
        suite.add_expectation(
            cls(
                column_list=["q_row", *rule.columns],
                rule_id=rule.id,
                meta={"severity": rule.severity, "title": rule.title, "message": rule.message},
            )
        )
    return suite


def _run_gx(frame: pd.DataFrame, rules: tuple[Rule, ...]) -> tuple[dict[str, np.ndarray], dict]:
    _quiet_gx()
    import great_expectations as gx

    _quiet_gx()
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
    except Exception:  # progress bars are cosmetic
        pass
    batch = (
        context.data_sources.add_pandas("cpf_gate")
        .add_dataframe_asset("passages")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = context.suites.add(build_suite(rules))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="cpf_identity_gate_run", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={
            "result_format": "COMPLETE",
            "return_unexpected_index_query": False,
            "partial_unexpected_count": 0,
        },
    )
    fired: dict[str, np.ndarray] = {}
    for r in result.results:
        rule_id = r.expectation_config.kwargs["rule_id"]
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"rule {rule_id} failed in Great Expectations: "
                f"{r.exception_info.get('exception_message')}"
            )
        index = r.result.get("unexpected_index_list") or []
        fired[rule_id] = np.asarray(index, dtype=np.int64)
    return fired, dict(result.statistics)


def _run_direct(frame: pd.DataFrame, rules: tuple[Rule, ...]) -> dict[str, np.ndarray]:
    return {r.id: np.flatnonzero(r.evaluate(frame).to_numpy()) for r in rules}


def _joined(findings: pd.DataFrame, index: pd.Index) -> pd.Series:
    """Rule ids of each row, joined (empty string where none fired)."""
    joined = findings.groupby("index", sort=False)["rule_id"].agg(RULE_SEPARATOR.join)
    out = pd.Series("", index=index, dtype="str")
    out.loc[joined.index] = joined.to_numpy()
    return out


def run_gate(
    df: pd.DataFrame,
    *,
    today: dt.date | None = None,
    certification_map=None,
    use_gx: bool = True,
    rules: tuple[Rule, ...] = RULES,
) -> GateResult:
    """Check canonical rows (:mod:`cpf_deposit.sources.canonical`) before deposit.

    ``use_gx=False`` runs the same rule functions without Great Expectations (a
    cross-check and a fallback); the verdicts are identical."""
    started = time.perf_counter()
    # One GX call checks every row at once: no line along the way, only the closing one.
    checked = Progress(log, "contrôle d'identité", unit="lignes", every=float("inf"))
    with checked as progress:
        frame = prepare(df, today=today, certification_map=certification_map)
        if use_gx:
            fired, stats = _run_gx(frame, rules)
            engine = "great_expectations"
        else:
            fired, stats = _run_direct(frame, rules), {}
            engine = "pandas"
        progress.advance(len(frame))
    n = len(frame)
    rows, ids = [], []
    for rule in rules:
        idx = fired.get(rule.id, np.empty(0, dtype=np.int64))
        rows.append(idx)
        ids.append(np.full(len(idx), rule.id, dtype=object))
    row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    rid = np.concatenate(ids) if ids else np.empty(0, dtype=object)
    findings = pd.DataFrame({"index": row, "rule_id": rid})
    order = {r.id: k for k, r in enumerate(rules)}
    findings["_order"] = findings["rule_id"].map(order)
    findings = findings.sort_values(["index", "_order"], kind="stable").drop(columns="_order")
    findings["severity"] = findings["rule_id"].map({r.id: r.severity for r in rules})
    findings["message"] = findings["rule_id"].map({r.id: r.message for r in rules})
    findings["fix"] = None
    for rule in rules:
        sel = findings["rule_id"] == rule.id
        if sel.any() and rule.fix is not None:
            idx = findings.loc[sel, "index"].to_numpy()
            findings.loc[sel, "fix"] = rule.fixes(frame.loc[idx]).to_numpy()
    findings.insert(0, "row", frame["q_row"].to_numpy()[findings["index"].to_numpy()])
    findings.insert(
        1, "source_record_key", frame["source_record_key"].to_numpy()[findings["index"]]
    )
    findings = findings.reset_index(drop=True)

    blocked = np.zeros(n, dtype=bool)
    warned = np.zeros(n, dtype=bool)
    sev = findings["severity"].to_numpy()
    idx = findings["index"].to_numpy()
    blocked[idx[sev == BLOCK]] = True
    warned[idx[sev == WARN]] = True
    verdict = np.where(blocked, BLOCK, np.where(warned, WARN, OK))
    noted = sev == NOTE
    rule_ids = _joined(findings[~noted], frame.index)
    notes = _joined(findings[noted], frame.index)
    verdicts = pd.DataFrame(
        {
            "row": frame["q_row"].to_numpy(),
            "source_record_key": frame["source_record_key"],
            "source_person_id": frame["source_person_id"],
            "verdict": pd.array(verdict, dtype="str"),
            "rule_ids": rule_ids,
            "notes": notes,
        }
    )
    findings = findings.drop(columns="index")
    result = GateResult(
        verdicts=verdicts,
        findings=findings,
        prepared=frame,
        fired={r.id: len(fired.get(r.id, ())) for r in rules},
        gx_success=None if not use_gx else not bool(blocked.any() or warned.any()),
        gx_statistics=stats,
        seconds=time.perf_counter() - started,
        engine=engine,
    )
    return result

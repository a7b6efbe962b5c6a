"""Identity quality gate: catch before deposit what the CDC would reject.

Public API (Great Expectations is imported lazily, on the first run):

* :func:`run_gate` (canonical DataFrame -> :class:`GateResult`: verdicts, findings);
* :func:`write_all` (verdicts Parquet/CSV, quarantine CSV/XLSX, offline HTML report);
* :data:`RULES` (the rule catalogue) and the name keys :func:`cdc_key`,
  :func:`loose_key` of :mod:`cpf_deposit.quality.names`.
"""

from cpf_deposit.quality.gate import GateResult, run_gate
from cpf_deposit.quality.names import cdc_key, loose_key
from cpf_deposit.quality.outputs import write_all
from cpf_deposit.quality.rules import BLOCK, OK, RULE_BY_ID, RULES, WARN, Rule

__all__ = [
    "BLOCK",
    "OK",
    "RULES",
    "RULE_BY_ID",
    "WARN",
    "GateResult",
    "Rule",
    "cdc_key",
    "loose_key",
    "run_gate",
    "write_all",
]

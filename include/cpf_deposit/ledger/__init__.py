"""The ledger: every passage the project produces, where it went and what the CDC said.

Why it exists: with XSD 1.1.2 the CDC cannot update a passage, so what was sent,
accepted or rejected must be known here to send each passage exactly as often as
needed. Nightly, annual and backfill runs share it; database claims keep them from
sending the same passage twice (see :mod:`cpf_deposit.ledger.delta`).
"""

from cpf_deposit.ledger.delta import DeltaSelection, Reason, select_delta
from cpf_deposit.ledger.engine import Ledger, LedgerError, open_ledger, url_from_conn_id
from cpf_deposit.ledger.ids import data_hash, make_technical_id, technical_ids
from cpf_deposit.ledger.runs import finish_run
from cpf_deposit.ledger.schema import Action, FileStatus, RunState, Status
from cpf_deposit.ledger.status import (
    ClaimLost,
    Outcome,
    changed_after_acceptance,
    mark_accepted,
    mark_deposited,
    mark_file_rejected,
    mark_rejected,
    passage_counts,
)

__all__ = [
    "Action",
    "ClaimLost",
    "DeltaSelection",
    "FileStatus",
    "Ledger",
    "LedgerError",
    "Outcome",
    "Reason",
    "RunState",
    "Status",
    "changed_after_acceptance",
    "data_hash",
    "finish_run",
    "make_technical_id",
    "mark_accepted",
    "mark_deposited",
    "mark_file_rejected",
    "mark_rejected",
    "open_ledger",
    "passage_counts",
    "select_delta",
    "technical_ids",
    "url_from_conn_id",
]

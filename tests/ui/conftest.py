"""A small ledger state for the dashboard, built through the ledger's own functions.

File A: 10 passages deposited, 8 accepted, 2 rejected
(stage 1, several holders). File B: 4 passages deposited, rejected on XSD errors.
File C: 3 passages staged, awaiting deposit. Rate 8 / 10 = 80 %, under the 90 %.
"""

from __future__ import annotations

import pytest

from tests.receipts.conftest import deposit_file

FILE_A, FLUX_A = "CPF_0720916E_01BJD364_20240715150000.xml", "aaaaaaaa-0000-4000-8000-000000000001"
FILE_B, FLUX_B = "CPF_0720916E_01BJD364_20240801150000.xml", "bbbbbbbb-0000-4000-8000-000000000002"
FILE_C, FLUX_C = "CPF_0720916E_01BJD364_20240901150000.xml", "cccccccc-0000-4000-8000-000000000003"
STAGE_1 = "Aucun titulaire ne correspond aux critères obligatoires"
SEVERAL = "Plusieurs titulaires ont été identifiés"


def source_key(i: int) -> str:  # tests.ledger_helpers.make_passage's source record key
    return f"{20230000 + i}-DIP-{i % 7}-2023"


@pytest.fixture
def ledger(sqlite_ledger):
    """The config's own SQLite ledger: the dashboard opens it from the config."""
    return sqlite_ledger


@pytest.fixture
def state(ledger):
    from cpf_deposit.ledger import mark_accepted, mark_file_rejected, mark_rejected

    a = [f"T-A{i}" for i in range(10)]
    deposit_file(ledger, FILE_A, FLUX_A, a, run_id="run-a", first=0)
    mark_accepted(ledger, FLUX_A, a[:8])
    mark_rejected(ledger, FLUX_A, {a[8]: STAGE_1, a[9]: SEVERAL})
    b = [f"T-B{i}" for i in range(4)]
    deposit_file(ledger, FILE_B, FLUX_B, b, run_id="run-b", first=100)
    mark_file_rejected(ledger, FLUX_B, "cvc-complex-type.2.4.a: élément inattendu")
    c = [f"T-C{i}" for i in range(3)]
    deposit_file(ledger, FILE_C, FLUX_C, c, run_id="run-c", first=200, deposit=False)
    return ledger

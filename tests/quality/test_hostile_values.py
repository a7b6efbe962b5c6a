"""No value in any field stops the gate or its exports; the record is named, not printed."""

from __future__ import annotations

import pandas as pd
import pytest

from cpf_deposit.quality.gate import run_gate
from cpf_deposit.quality.outputs import write_all
from cpf_deposit.sources.canonical import COLUMN_NAMES
from tests.quality.conftest import TODAY, canonical

TEXT_COLUMNS = [
    c
    for c in COLUMN_NAMES
    if c not in ("academic_year", "source_system", "source_record_key", "source_person_id")
]
# Lone surrogates cannot reach the gate (canonical rows are Arrow strings, UTF-8): the
# extraction refuses them field by field (tests/sources).
HOSTILE = {
    "control": "A\x01B",
    "nul": "A\x00B",
    "nonchar": "A\uffffB",
    "formula": '=HYPERLINK("http://x","y")',
    "plus": "+33",
    "huge": "X" * 10_000,
    "tab": "A\tB",
    "newline": "A\r\nB",
}


@pytest.fixture(scope="module")
def hostile_rows() -> pd.DataFrame:
    rows = [{}]  # one clean row
    for column in TEXT_COLUMNS:
        for value in HOSTILE.values():
            rows.append({column: value})
    return canonical(*rows)


@pytest.mark.parametrize("use_gx", [False, True])
def test_every_hostile_value_is_checked_and_exported(hostile_rows, tmp_path, use_gx, caplog):
    result = run_gate(hostile_rows, today=TODAY, use_gx=use_gx)
    assert len(result.verdicts) == len(hostile_rows)
    assert result.verdicts["verdict"].iloc[0] != "BLOCK"  # the clean row goes through
    paths = write_all(result, tmp_path)
    assert all(p.exists() for p in paths.values())
    for value in HOSTILE.values():
        assert value not in caplog.text


def test_exports_hold_no_formula_and_name_the_record(hostile_rows, tmp_path):
    from openpyxl import load_workbook

    result = run_gate(hostile_rows, today=TODAY, use_gx=False)
    paths = write_all(result, tmp_path)
    wb = load_workbook(paths["quarantine_xlsx"])
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c for c in cells if c.data_type == "f"]
    keys = {c.value for c in cells if c.column == 2 and c.row > 1}
    blocked = set(result.verdicts.loc[result.verdicts["verdict"] == "BLOCK", "source_record_key"])
    assert blocked and blocked <= keys
    text = paths["quarantine_csv"].read_text(encoding="utf-8-sig")
    assert ";=" not in text and ";+" not in text
    assert "⟨U+0001⟩" in text


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("A\x01B", "BLOCK"),  # XML cannot hold it: R12
        ("A\tB", "WARN"),  # the XSD and the CDC accept it: R05B only
    ],
)
def test_xsd_legal_characters_are_never_blocked(value, verdict):
    result = run_gate(canonical({"first_name_2": value}), today=TODAY, use_gx=False)
    assert result.verdicts["verdict"].iloc[0] == verdict

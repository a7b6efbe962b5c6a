"""Spreadsheet cells: formula-safe and storable whatever the value holds."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpf_deposit.spreadsheet import (
    FORMULA_START,
    XLSX_MAX_CHARS,
    csv_cell,
    csv_column,
    needs_care,
    xlsx_text,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DUPONT", "DUPONT"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+33 6", "'+33 6"),
        ("-DUPONT", "'-DUPONT"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("DU\x00PONT", "DU⟨U+0000⟩PONT"),
        ("DU\ud800PONT", "DU⟨U+D800⟩PONT"),
        ("MARIE-CLAIRE", "MARIE-CLAIRE"),
        (None, None),
        (12, 12),
    ],
)
def test_csv_cell(value, expected):
    assert csv_cell(value) == expected


def test_csv_column_matches_cell_by_cell():
    values = pd.Series(["=1+1", "ok", None, "a\x01b", "-x", "x-"], dtype="object")
    assert csv_column(values).tolist() == [csv_cell(v) for v in values]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("A\x01B", "A⟨U+0001⟩B"),
        ("\ufffe", "⟨U+FFFE⟩"),
        ("LOUIS\tMARIE", "LOUIS\tMARIE"),  # XML-legal: kept as is
    ],
)
def test_xlsx_text_shows_what_it_cannot_store(value, shown):
    assert xlsx_text(value) == shown


def test_xlsx_text_says_the_real_length_when_cut():
    text = xlsx_text("A" * 40_000)
    assert len(text) == XLSX_MAX_CHARS
    assert text.endswith("[affichage limité : 40000 caractères]")


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(), max_size=60))
def test_any_text_is_storable_and_never_a_formula(value):
    from openpyxl import Workbook, load_workbook
    from openpyxl.cell import WriteOnlyCell

    shown = csv_cell(value)
    assert not shown.startswith(FORMULA_START)
    shown.encode("utf-8")  # a CSV can always be written
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("s")
    cell = WriteOnlyCell(ws, value=xlsx_text(value) if needs_care(value) else value)
    cell.data_type = "s"
    ws.append([cell])
    buf = io.BytesIO()
    wb.save(buf)
    back = load_workbook(io.BytesIO(buf.getvalue()), read_only=True)["s"]
    (stored,) = next(back.iter_rows(values_only=True))
    written = xlsx_text(value) if needs_care(value) else value
    assert (stored or "") == written

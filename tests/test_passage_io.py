"""Canonical passages through CSV and Parquet, and rows that cannot be read."""

from __future__ import annotations

import stat

import pytest

from cpf_deposit.flux.writer import Refusal
from cpf_deposit.passage_io import read_passages, write_passages
from cpf_deposit.samples import sample_passages


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_every_value(tmp_path, suffix):
    path = tmp_path / f"passages{suffix}"
    assert write_passages(sample_passages(), path) == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(read_passages(path)) == sample_passages()


def test_unreadable_cells_are_reported_by_row_and_field(tmp_path):
    path = tmp_path / "p.csv"
    write_passages(sample_passages()[:2], path)
    text = path.read_text(encoding="utf-8").replace("2023-07-04", "2023-02-30", 1)
    text = text.replace(",2001,", ",deux mille un,", 1)
    path.write_text(text, encoding="utf-8")
    items = list(read_passages(path))
    [bad] = [i for i in items if isinstance(i, Refusal)]
    assert bad.technical_id == "DEMO-0001"
    assert bad.problems[0].field in ("award_date", "birth_year")
    assert len(items) == 2


def test_values_are_not_trimmed(tmp_path):
    import dataclasses

    p = dataclasses.replace(sample_passages()[0], birth_name=" MARTIN ")
    path = tmp_path / "p.csv"
    write_passages([p], path)
    [back] = read_passages(path)
    assert back.birth_name == " MARTIN "


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        list(read_passages(tmp_path / "p.xlsx"))

"""GEODE and Pégase queries honour the canonical contract; the extract command end to end."""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3

import pytest
import sqlglot

from cpf_deposit.commands import extract as extract_command
from cpf_deposit.passage_io import read_passages
from cpf_deposit.sources.canonical import COLUMN_NAMES, NIR_SOURCE_COLUMNS
from cpf_deposit.sources.extract import extract
from cpf_deposit.sources.sql import SOURCE_DIALECT, load_sql
from tests.sources.source_helpers import PERSON, jury, result


@pytest.mark.parametrize("system", sorted(SOURCE_DIALECT))
def test_every_query_returns_the_canonical_columns_in_order(system):
    tree = sqlglot.parse_one(load_sql(system), read=SOURCE_DIALECT[system])
    # then the NIR, for the extraction to consume (Apogée only: the others hold none)
    nir = list(NIR_SOURCE_COLUMNS) if system == "apogee" else []
    assert [e.alias_or_name for e in tree.selects] == [*COLUMN_NAMES, *nir]


def test_the_geode_view_template_matches_the_contract():
    from importlib import resources

    text = (resources.files("cpf_deposit") / "sql" / "geode_view_template.sql").read_text()
    view = sqlglot.parse_one(text, read="oracle")
    assert [e.alias_or_name for e in view.expression.selects] == list(COLUMN_NAMES)


def test_geode_view_rows_become_passages(tmp_path, monkeypatch):
    db = tmp_path / "geode.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE cdc_src_graduate_cert ({', '.join(COLUMN_NAMES)})")
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(
        source_system="GEODE", source_record_key="G-1", birth_name="LE GOFF",
        first_name_1="ANNE-SOPHIE", sex="F", birth_date="1998-02-03",
        birth_date_is_estimated="N", born_in_france="Y", birth_department_code="044",
        birth_city_label="NANTES", certification_type="RS", certification_code="5875",
        award_date="2024-06-30", academic_year=2023, mention_code="TB",
    )  # fmt: skip
    missing = {**row, "source_record_key": "G-2", "award_date": None,
               "results_status_date": "2024-07-01"}  # fmt: skip
    conn.executemany(
        f"INSERT INTO cdc_src_graduate_cert VALUES ({', '.join('?' * len(COLUMN_NAMES))})",
        [tuple(r[c] for c in COLUMN_NAMES) for r in (row, missing)],
    )
    conn.commit()
    conn.close()
    monkeypatch.setenv("AIRFLOW_CONN_GEODE_DB", f"sqlite://{db}")
    out = tmp_path / "g.parquet"
    window = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    report = extract("geode", "geode_db", *window, out, id_key=bytes(32))
    (p,) = read_passages(out)
    assert (p.certification_code, p.birth_insee_code, p.mention) == (
        "RS5875",
        "44109",
        "MENTION_TRES_BIEN",
    )
    assert report.errors == 1 and report.by_code["award_date_missing"] == 1


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    extract_command.register(p.add_subparsers(dest="command"))
    return p


def test_extract_command_exit_codes(tmp_path, apogee_conn, capsys):
    conn = apogee_conn([PERSON], [result(), result(dip="DUPHOT")], [jury(), jury(dip="DUPHOT")])
    base = ["extract", "--source", "apogee", "--conn", conn, "--from", "2021-07-01",
            "--to", "2026-12-31"]  # fmt: skip
    args = parser().parse_args([*base, "--out", str(tmp_path / "a.parquet")])
    assert args.func(args) == 1  # DUPHOT has no certification
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("cpf-deposit extract: extraction apogee : 2 ligne(s)")
    assert "1 passage(s)" in last and "MARTIN" not in last

    csv_map = tmp_path / "map.csv"
    csv_map.write_text(
        "diploma_code,diploma_version,certification_type,certification_code\n"
        "LINFO,1,RNCP,RNCP24514\nDUPHOT,1,RS,RS1234\n",
        encoding="utf-8",
    )
    args = parser().parse_args([*base, "--out", str(tmp_path / "b.parquet"), "--map", str(csv_map)])
    assert args.func(args) == 0

    from cpf_deposit.cli import UsageError

    # A bad line refuses its diploma version only (exit 1, reported), never the mapping.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "diploma_code,diploma_version,certification_type,certification_code\n"
        "LINFO,1,RNCP,RNCP24514\nDUPHOT,1,RS,1234\n"
    )
    args = parser().parse_args([*base, "--out", str(tmp_path / "c.parquet"), "--map", str(bad)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "certification_map_line_invalid: 1" in out and "1 passage(s)" in out
    # A file that is no mapping at all is a configuration error (exit 2).
    header = tmp_path / "header.csv"
    header.write_text("diploma_code,certification_type\nX,RNCP\n")
    args = parser().parse_args([*base, "--out", str(tmp_path / "d.parquet"), "--map", str(header)])
    with pytest.raises(UsageError, match="certification_code"):
        args.func(args)
    # The end is exclusive: --from equal to --to is an empty window.
    empty = parser().parse_args(
        [*base[:-4], "--from", "2024-09-01", "--to", "2024-09-01", "--out", "e.parquet"]
    )
    with pytest.raises(UsageError, match="exclusive"):
        empty.func(empty)
    with pytest.raises(SystemExit) as exc:
        parser().parse_args([*base[:-2], "--to", "31/12/2026", "--out", "x.parquet"])
    assert exc.value.code == 2

"""Each Apogée selection rule, on hand-built rows, through the real SQL and connection."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow.parquet as pq
import sqlglot

from cpf_deposit.ledger.ids import make_technical_id
from cpf_deposit.passage_io import read_passages
from cpf_deposit.sources.extract import extract
from cpf_deposit.sources.sql import load_sql, prepare_sql
from tests.sources.source_helpers import PERSON, jury, result

WINDOW = (dt.date(2021, 7, 1), dt.date(2026, 12, 31))
ID_KEY = bytes(32)


def run(tmp_path, conn_id, **kwargs):
    out = tmp_path / "out.parquet"
    report = extract("apogee", conn_id, *WINDOW, out, id_key=ID_KEY, **kwargs)
    passages = list(read_passages(out))
    with report.issues_path.open(encoding="utf-8") as fh:
        issues = list(csv.DictReader(fh))
    return report, passages, issues


def person(**changes):
    return {**PERSON, **changes}


def test_the_apogee_query_parses_as_oracle_sql():
    tree = sqlglot.parse_one(load_sql("apogee"), read="oracle")
    assert tree.find(sqlglot.exp.Window) is not None
    sqlite_sql = prepare_sql(load_sql("apogee"), "oracle", "sqlite")
    assert ":date_from" in sqlite_sql and "NVL" not in sqlite_sql.upper()
    assert "%(date_from)s" in prepare_sql(load_sql("apogee"), "oracle", "postgres")


def test_a_plain_pass_becomes_one_passage(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result()], [jury()])
    report, passages, issues = run(tmp_path, conn)
    assert report.rows == 1 and report.errors == 0 and issues == []
    (p,) = passages
    assert (p.certification_type, p.certification_code) == ("RNCP", "RNCP24514")
    assert p.award_date == dt.date(2023, 6, 20)
    assert p.mention == "MENTION_BIEN"
    assert (p.birth_name, p.first_name_1, p.first_name_2) == ("MARTIN", "JEAN-FRANÇOIS", "LOUIS")
    assert (p.birth_year, p.birth_month, p.birth_day, p.sex) == (2001, 3, 14, "M")
    assert p.birth_insee_code == "72181"
    assert p.source_record_key == "1-LINFO-1"
    assert p.technical_id == make_technical_id(ID_KEY, "APOGEE", "1-LINFO-1", "RNCP", "RNCP24514")


def test_a_failed_result_is_not_a_passage(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result(tre="AJ", men=None)], [jury()])
    report, passages, _ = run(tmp_path, conn)
    assert report.rows == 0 and passages == []


def test_a_local_positive_code_counts_as_a_pass(tmp_path, apogee_conn):
    # ADJ is positive by TYP_RESULTAT.COD_NEG_TRE = 1, not by its name
    conn = apogee_conn([person()], [result(tre="ADJ")], [jury()])
    _, passages, _ = run(tmp_path, conn)
    assert len(passages) == 1


def test_an_unpublished_jury_is_not_exported(tmp_path, apogee_conn):
    for state in ("E", "A"):
        conn = apogee_conn([person()], [result()], [jury(state=state)], name=f"{state}.sqlite")
        report, passages, _ = run(tmp_path, conn)
        assert report.rows == 0 and passages == [], state


def test_admissibility_alone_is_not_an_award(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result(adm="0")], [jury(adm="0")])
    report, passages, _ = run(tmp_path, conn)
    assert report.rows == 0 and passages == []


def test_second_session_pass_after_a_first_session_failure(tmp_path, apogee_conn):
    rows = [
        result(ses="1", tre="AJ", men=None, obt=None),
        result(ses="2", tre="ADM", men="AB", obt="2023-09-12"),
    ]
    juries = [jury(ses="1"), jury(ses="2", date="2023-09-12")]
    conn = apogee_conn([person()], rows, juries)
    _, passages, _ = run(tmp_path, conn)
    (p,) = passages
    assert p.award_date == dt.date(2023, 9, 12)
    assert p.mention == "MENTION_ASSEZ_BIEN"


def test_one_passage_per_diploma_version_the_first_session_passed(tmp_path, apogee_conn):
    rows = [
        result(anu="2021", ses="1", obt="2022-06-20"),
        result(anu="2022", ses="1", obt="2023-06-20"),  # passed again later: same award
    ]
    juries = [jury(anu="2021", date="2022-06-20"), jury(anu="2022")]
    conn = apogee_conn([person()], rows, juries)
    _, passages, _ = run(tmp_path, conn)
    assert [p.award_date for p in passages] == [dt.date(2022, 6, 20)]


def test_usage_first_name_gives_way_to_the_civil_status_one(tmp_path, apogee_conn):
    usage = person(
        lib_pr1_ind="CAMILLE",
        cod_sex_etu="f",
        tem_pr_usage="O",
        lib_pr_eta_civ="CAMILLO",
        cod_sex_eta_civ="M",
    )
    conn = apogee_conn([usage], [result()], [jury()])
    _, passages, _ = run(tmp_path, conn)
    (p,) = passages
    assert (p.first_name_1, p.sex) == ("CAMILLO", "M")


def test_a_missing_award_date_is_reported_not_invented(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result(obt=None)], [jury()])
    report, passages, issues = run(tmp_path, conn)
    assert passages == [] and report.errors == 1
    (issue,) = issues
    assert issue["source_record_key"] == "1-LINFO-1"
    assert (issue["field"], issue["code"], issue["severity"]) == (
        "award_date",
        "award_date_missing",
        "error",
    )


def test_an_unmapped_diploma_version_is_reported(tmp_path, apogee_conn):
    conn = apogee_conn(
        [person()], [result(dip="DUPHOT", anu="2022")], [jury(dip="DUPHOT", anu="2022")]
    )
    _report, passages, issues = run(tmp_path, conn)
    assert passages == []
    (issue,) = issues
    assert issue["code"] == "diploma_unmapped"
    assert issue["source_record_key"] == "DUPHOT-1-2022"
    assert "1 passage(s) non transmis" in issue["message"]


def test_the_mapping_follows_the_academic_year(tmp_path, apogee_conn):
    rows = [result(dip="LDROIT", anu="2023", obt="2024-06-20")]
    conn = apogee_conn([person()], rows, [jury(dip="LDROIT", anu="2023", date="2024-06-20")])
    _, passages, _ = run(tmp_path, conn)
    assert passages[0].certification_code == "RNCP24438"
    rows = [result(dip="LDROIT", anu="2024", obt="2025-06-20")]
    conn = apogee_conn(
        [person()], rows, [jury(dip="LDROIT", anu="2024", date="2025-06-20")], name="b.sqlite"
    )
    _, passages, _ = run(tmp_path, conn)
    assert passages[0].certification_code == "RNCP39869"


def test_the_csv_mapping_replaces_the_table(tmp_path, apogee_conn):
    csv_map = tmp_path / "map.csv"
    csv_map.write_text(
        "cod_dip,cod_vrs_vdi,daa_deb,daa_fin,certif_type,certif_code\nLINFO,1,,,RNCP,RNCP11111\n",
        encoding="utf-8",
    )
    conn = apogee_conn([person()], [result()], [jury()])
    _, passages, _ = run(tmp_path, conn, certification_map=csv_map)
    assert passages[0].certification_code == "RNCP11111"


def test_a_foreign_birth_gets_the_insee_country_code(tmp_path, apogee_conn):
    abroad = person(
        cod_typ_dep_pay_nai="P",
        cod_dep_pay_nai="350",
        cod_com_nai_etu=None,
        lib_vil_nai_etu="CASABLANCA",
    )
    conn = apogee_conn([abroad], [result()], [jury()])
    _, passages, _ = run(tmp_path, conn)
    (p,) = passages
    assert p.birth_insee_code == "99350"
    assert p.birth_country_code == "350"
    assert (p.birth_city_label, p.birth_country_label) == ("CASABLANCA", "MAROC")


def test_a_free_text_birth_city_is_resolved_through_the_commune_table(tmp_path, apogee_conn):
    typed = person(cod_dep_pay_nai="042", cod_com_nai_etu=None, lib_vil_nai_etu="St Etienne")
    conn = apogee_conn([typed], [result()], [jury()])
    _, passages, issues = run(tmp_path, conn)
    assert passages[0].birth_insee_code == "42218" and issues == []


def test_the_nir_never_leaves_the_extraction(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result()], [jury()])
    report, _, _ = run(tmp_path, conn)
    table = pq.read_table(report.out)
    assert not any("nni" in c or "nir" in c for c in table.column_names)
    canonical = pq.read_table(report.canonical_path)
    assert "nir_number" not in canonical.column_names and "nir_key" not in canonical.column_names
    assert canonical.column("nir_status").to_pylist() == ["valid"]  # read, then dropped
    for path in (report.out, report.canonical_path, report.issues_path):
        data = path.read_bytes()
        assert b"1010372181123" not in data
    assert "1010372181123" not in str(canonical.to_pylist())
    assert "i.cod_nni_etu AS nir_number" in load_sql("apogee")


def test_outputs_are_private_files(tmp_path, apogee_conn):
    conn = apogee_conn([person()], [result()], [jury()])
    report, _, _ = run(tmp_path, conn)
    assert report.out.stat().st_mode & 0o777 == 0o600
    assert report.issues_path.stat().st_mode & 0o777 == 0o600

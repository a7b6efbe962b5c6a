"""The demo database: Apogée shape, realistic content, register and injected errors."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

from cpf_deposit.commands import demo_data
from cpf_deposit.demo.apogee import TABLE_COLUMNS
from cpf_deposit.demo.build import write_demo
from cpf_deposit.demo.errors import RATES

N = 2000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), N, seed=11)


def rows(path, sql):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_files_are_private_and_hold_the_apogee_tables(demo):
    for path in (demo.apogee, demo.register, demo.mapping):
        assert path.stat().st_mode & 0o777 == 0o600
    for table, columns in TABLE_COLUMNS.items():
        with sqlite3.connect(demo.apogee) as conn:
            got = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        assert got == list(columns), table
    (count,) = rows(demo.apogee, "SELECT COUNT(*) FROM individu")[0]
    assert count == demo.persons == N + N // 20


def test_the_same_seed_gives_the_same_database(tmp_path, demo):
    again = write_demo(tmp_path, N, seed=11)
    for table in ("individu", "resultat_vdi", "grp_resultat_vdi"):
        sql = f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5, 6"
        assert rows(again.apogee, sql) == rows(demo.apogee, sql)
    sql = "SELECT * FROM injected_error ORDER BY 1, 2, 3"
    assert rows(again.register, sql) == rows(demo.register, sql)
    other = write_demo(tmp_path / "other", N, seed=12)
    assert rows(other.apogee, "SELECT * FROM individu") != rows(
        demo.apogee, "SELECT * FROM individu"
    )


@pytest.mark.parametrize(
    ("what", "sql"),
    [
        ("second sessions", "SELECT COUNT(*) FROM resultat_vdi WHERE cod_ses = '2'"),
        ("failures", "SELECT COUNT(*) FROM resultat_vdi WHERE cod_tre IN ('AJ', 'ABI', 'DEF')"),
        ("admissibility", "SELECT COUNT(*) FROM resultat_vdi WHERE cod_adm = '0'"),
        ("unpublished juries", "SELECT COUNT(*) FROM grp_resultat_vdi WHERE eta_avc_vdi <> 'T'"),
        (
            "missing award dates",
            "SELECT COUNT(*) FROM resultat_vdi r JOIN typ_resultat t "
            "USING (cod_tre) WHERE t.cod_neg_tre = 1 AND r.cod_adm = '1' AND dat_obt_vdi IS NULL",
        ),
        ("local positive code", "SELECT COUNT(*) FROM resultat_vdi WHERE cod_tre = 'ADJ'"),
        (
            "usage first names",
            "SELECT COUNT(*) FROM individu WHERE tem_pr_usage = 'O' AND lib_pr_eta_civ IS NOT NULL",
        ),
        ("born abroad", "SELECT COUNT(*) FROM individu WHERE cod_typ_dep_pay_nai = 'P'"),
        ("Corsica", "SELECT COUNT(*) FROM individu WHERE cod_dep_pay_nai IN ('02A', '02B')"),
        ("overseas", "SELECT COUNT(*) FROM individu WHERE cod_dep_pay_nai LIKE '97_'"),
        (
            "free-text cities only",
            "SELECT COUNT(*) FROM individu WHERE cod_typ_dep_pay_nai = 'D'"
            " AND cod_com_nai_etu IS NULL AND lib_vil_nai_etu IS NOT NULL",
        ),
        (
            "hyphenated names",
            "SELECT COUNT(*) FROM individu WHERE lib_nom_pat_ind LIKE '%-%'"
            " OR lib_pr1_ind LIKE '%-%'",
        ),
        ("particles", "SELECT COUNT(*) FROM individu WHERE lib_nom_pat_ind LIKE '% %'"),
        ("apostrophes", "SELECT COUNT(*) FROM individu WHERE lib_nom_pat_ind LIKE '%''%'"),
        (
            "married names",
            "SELECT COUNT(*) FROM individu WHERE lib_nom_usu_ind IS NOT NULL"
            " AND lib_nom_usu_ind <> lib_nom_pat_ind",
        ),
        (
            "unmapped versions",
            "SELECT COUNT(*) FROM resultat_vdi r WHERE NOT EXISTS (SELECT 1"
            " FROM cdc_vdi_certif_map m WHERE m.cod_dip = r.cod_dip"
            " AND m.cod_vrs_vdi = r.cod_vrs_vdi)",
        ),
    ],
)
def test_the_demo_holds_the_hard_cases(demo, what, sql):
    assert rows(demo.apogee, sql)[0][0] > 0, what


def test_ligatures_appear_in_names(tmp_path):
    big = write_demo(tmp_path, 20000, seed=5)
    sql = ("SELECT COUNT(*) FROM individu WHERE lib_pr1_ind LIKE '%Æ%' OR lib_nom_pat_ind"
           " LIKE '%Œ%' OR lib_pr1_ind LIKE '%Œ%'")  # fmt: skip
    assert rows(big.apogee, sql)[0][0] > 0


def test_injected_errors_follow_the_rates_and_keep_the_truth(demo):
    persons = demo.persons
    counts = dict(
        rows(
            demo.register,
            "SELECT error_type, COUNT(DISTINCT record_key) FROM injected_error GROUP BY 1",
        )
    )
    for error, rate in RATES.items():
        if error in ("birth_name_punctuation", "compound_first_name_unhyphenated"):
            assert 0 < counts[error] <= round(rate * persons), error  # limited by eligibility
        elif error.startswith("first_names_2_3"):  # an earlier error may have emptied them
            assert 0.95 * round(rate * persons) <= counts[error] <= round(rate * persons)
        else:
            assert counts[error] == round(rate * persons), error
    # the truth names the Apogée column and its original value
    key, field, original = rows(
        demo.register,
        "SELECT record_key, field, original_value FROM injected_error "
        "WHERE error_type = 'name_inverted' AND field = 'LIB_NOM_PAT_IND' LIMIT 1",
    )[0]
    (now,) = rows(demo.apogee, f"SELECT lib_pr1_ind FROM individu WHERE cod_ind = {key}")[0]
    assert now == original and field == "LIB_NOM_PAT_IND"


def test_the_register_has_true_identities_homonyms_and_no_absent_holder(demo):
    origins = dict(rows(demo.register, "SELECT origin, COUNT(*) FROM sngi_person GROUP BY 1"))
    absent = rows(
        demo.register,
        "SELECT COUNT(*) FROM injected_error WHERE error_type = 'absent_from_register' "
        "AND field = '-'",
    )[0][0]
    assert origins["graduate"] == demo.persons - absent
    assert origins["homonym"] > 0
    share = rows(
        demo.register,
        "SELECT COUNT(DISTINCT g.person_id) * 1.0 / COUNT(DISTINCT g2.person_id) FROM "
        "sngi_person g2 LEFT JOIN sngi_person h ON h.origin = 'homonym' AND "
        "h.nom_naissance = g2.nom_naissance AND h.prenom1 = g2.prenom1 AND h.sexe = g2.sexe "
        "AND h.annee = g2.annee LEFT JOIN sngi_person g ON g.person_id = g2.person_id "
        "AND h.person_id IS NOT NULL WHERE g2.origin = 'graduate'",
    )[0][0]
    assert 0.03 < share < 0.12
    # register spelling: upper case without accents
    bad = rows(demo.register, "SELECT COUNT(*) FROM sngi_person WHERE prenom1 GLOB '*[ÉÈÏŒÆ]*'")
    assert bad[0][0] == 0


def test_demo_data_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    demo_data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo-data", "--graduates", "50", "--seed", "2", "--out",
                              str(tmp_path)])  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("cpf-deposit demo-data: 52 personnes")
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["demo-data", "--graduates", "0"])
    assert exc.value.code == 2


def test_birth_dates_spread_over_leap_years_too():
    import numpy as np

    from cpf_deposit.demo.population import draw_population

    pop = draw_population(np.random.default_rng(7), 20_000)
    births = pop.birth_date.astype("datetime64[D]")
    years = births.astype("datetime64[Y]").astype(int) + 1970
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    jan_first = births == births.astype("datetime64[Y]").astype("datetime64[D]")
    # About 1/366 of leap-year births fall on 1 January, not all of them.
    assert leap.sum() > 1000
    assert jan_first[leap].mean() < 0.02


def test_oracle_script_is_oracle_sql_with_every_row(tmp_path):
    import sqlite3

    import sqlglot

    from cpf_deposit.demo.build import write_demo
    from cpf_deposit.demo.oracle import oracle_statements, write_oracle_script

    files = write_demo(tmp_path / "demo", 40, seed=3)
    out = tmp_path / "oracle.sql"
    count = write_oracle_script(files.apogee, out)
    conn = sqlite3.connect(files.apogee)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    rows = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)
    assert count == len(tables) + rows
    text = out.read_text(encoding="utf-8")
    assert "ALTER SESSION SET CONTAINER = FREEPDB1;" in text and text.endswith("COMMIT;\n")
    # Every statement but the (many) commune rows parses as Oracle SQL.
    for stmt in oracle_statements(files.apogee):
        if not stmt.startswith("INSERT INTO commune"):
            sqlglot.parse_one(stmt, read="oracle")
    assert "DATE '" in text and "''" in text  # typed dates, quotes doubled (N'DIAYE...)

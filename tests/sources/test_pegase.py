"""The Pégase query, run for real on PostgreSQL against the DRE tables it reads.

The tables carry the columns the PC-Scol DRE documents (docs/sources.md); the rows
are the cases the selection must tell apart.
"""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from cpf_deposit.ledger.ids import make_technical_id
from cpf_deposit.passage_io import read_passages
from cpf_deposit.sources.extract import extract

PG = "host=127.0.0.1 port=5432 user=postgres"
ID_KEY = bytes(32)
WINDOW = (dt.date(2024, 1, 1), dt.date(2025, 1, 1))

DDL = """
CREATE SCHEMA schema_idt;
CREATE SCHEMA schema_coc;
CREATE SCHEMA schema_ref;
CREATE TABLE schema_idt.apprenant (
  id uuid PRIMARY KEY, code_apprenant varchar(20), ine_maitre varchar(11),
  nom_usage varchar(100), prenom2 varchar(100), prenom3 varchar(100), sexe varchar(1),
  date_naissance date, code_pays_naissance varchar(3), code_commune_naissance varchar(5),
  libelle_commune_naissance_etranger varchar(100), code_nationalite varchar(3));
CREATE TABLE schema_idt.identite (
  id uuid PRIMARY KEY, nom_naissance varchar(100), prenom varchar(100),
  date_modification timestamp);
CREATE TABLE schema_ref.pays_nationalite (
  code varchar(3) PRIMARY KEY, libelle_long varchar(100));
CREATE TABLE schema_coc.apprenant (id bigint PRIMARY KEY, uuid uuid, code varchar(20));
CREATE TABLE schema_coc.diplome (
  id bigint PRIMARY KEY, code varchar(30), intitule varchar(200));
CREATE TABLE schema_coc.apprenant_diplome (
  id_diplome bigint, id_apprenant bigint, date_autorisation timestamp,
  date_annulation_apres_edition timestamp, motif_annulation_apres_edition varchar(200),
  PRIMARY KEY (id_apprenant, id_diplome));
CREATE TABLE schema_coc.diplome_evaluation (
  id_diplome bigint, id_apprenant bigint, resultat varchar(10), etat_resultat varchar(20),
  mention varchar(10), date_deliberation timestamp);
"""

# (coc id, first name, birth name, usage name, sex, born, country, commune, foreign city,
#  authorised, cancelled, deliberation, mention)
CASES = {
    "plain": (1, "Anne-Sophie", "LE GOFF", "LE GOFF", "f", dt.date(1998, 2, 3), "100",
              "72181", None, "2024-07-05", None, "2024-07-01", "TB"),
    "born_abroad": (2, "Kofi", "MENSAH", None, "M", dt.date(1997, 5, 6), "216", None,
                    "Accra", "2024-07-05", None, "2024-06-28", None),
    "cancelled": (3, "Luc", "MARTIN", None, "M", dt.date(1999, 1, 1), "100", "44109", None,
                  "2024-07-05", "2024-09-01", "2024-07-01", "B"),
    "not_authorised": (4, "Léa", "PETIT", None, "F", dt.date(1999, 1, 1), "100", "44109",
                       None, None, None, "2024-07-01", "B"),
    "no_deliberation": (5, "Inès", "ROUX", None, "F", dt.date(2000, 3, 3), "100", "44109",
                        None, "2024-07-05", None, None, None),
    "outside_window": (6, "Hugo", "BLANC", None, "M", dt.date(2000, 3, 3), "100", "44109",
                       None, "2023-07-05", None, "2023-07-01", "AB"),
}  # fmt: skip


@pytest.fixture
def pegase(tmp_path, monkeypatch):
    name = f"cpf_pegase_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{PG} dbname={name}") as db:
            db.execute(DDL)
            db.execute("INSERT INTO schema_ref.pays_nationalite VALUES ('100', 'France')")
            db.execute("INSERT INTO schema_ref.pays_nationalite VALUES ('216', 'Ghana')")
            db.execute("INSERT INTO schema_coc.diplome VALUES (10, 'LIC-INFO', 'Licence')")
            for coc_id, first, birth, usage, sex, born, country, commune, city, auth, cancel, \
                    delib, mention in CASES.values():  # fmt: skip
                person = uuid.uuid4()
                db.execute(
                    "INSERT INTO schema_idt.apprenant VALUES "
                    "(%s, %s, 'N/A', %s, NULL, NULL, %s, %s, %s, %s, %s, %s)",
                    (person, f"E{coc_id}", usage, sex, born, country, commune, city, country),
                )
                db.execute(
                    "INSERT INTO schema_idt.identite VALUES (%s, %s, %s, now())",
                    (person, birth, first),
                )
                db.execute(
                    "INSERT INTO schema_coc.apprenant VALUES (%s, %s, %s)",
                    (coc_id, person, f"E{coc_id}"),
                )
                db.execute(
                    "INSERT INTO schema_coc.apprenant_diplome VALUES (10, %s, %s, %s, NULL)",
                    (coc_id, auth, cancel),
                )
                db.execute(
                    "INSERT INTO schema_coc.diplome_evaluation VALUES "
                    "(10, %s, 'ADM', 'PUBLIE', %s, %s)",
                    (coc_id, mention, delib),
                )
        cmap = tmp_path / "map.csv"
        cmap.write_text(
            "diploma_code,certification_type,certification_code\nLIC-INFO,RNCP,RNCP24514\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("AIRFLOW_CONN_PEGASE_DRE", f"postgresql://postgres@127.0.0.1/{name}")
        yield cmap
    finally:
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_pegase_awards_of_the_window_become_passages(pegase, tmp_path):
    out = tmp_path / "pegase.parquet"
    report = extract("pegase", "pegase_dre", *WINDOW, out, id_key=ID_KEY, certification_map=pegase)
    by_key = {p.source_record_key: p for p in read_passages(out)}
    # cancelled, not authorised and outside the window are not selected; the award with
    # no deliberation date is selected on its authorisation date, then reported.
    assert report.rows == 3 and sorted(by_key) == ["1-10", "2-10"]
    assert report.by_code["award_date_missing"] == 1

    plain, abroad = by_key["1-10"], by_key["2-10"]
    assert plain.technical_id == make_technical_id(ID_KEY, "PEGASE", "1-10", "RNCP", "RNCP24514")
    assert (plain.birth_name, plain.usage_name, plain.first_name_1, plain.sex) == (
        "LE GOFF",
        None,
        "Anne-Sophie",
        "F",
    )  # a usage name equal to the birth name is not one
    assert (plain.award_date, plain.mention, plain.birth_insee_code) == (
        dt.date(2024, 7, 1),
        "MENTION_TRES_BIEN",
        "72181",
    )
    assert (plain.birth_year, plain.birth_month, plain.birth_day) == (1998, 2, 3)
    assert abroad.birth_insee_code == "99216"  # the INSEE code of Ghana, for the CDC
    assert (abroad.birth_city_label, abroad.birth_country_label) == ("Accra", "Ghana")

"""Hand-built Apogée rows and databases for the selection-rule tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cpf_deposit.demo.apogee import TABLE_COLUMNS, reference_rows
from cpf_deposit.demo.build import apogee_ddl

PERSON = {
    "cod_ind": 1,
    "cod_etu": 21000001,
    "cod_nne_ind": "123456789A",
    "cod_cle_nne_ind": "B",
    "lib_nom_pat_ind": "MARTIN",
    "lib_nom_usu_ind": None,
    "lib_pr1_ind": "JEAN-FRANÇOIS",
    "lib_pr2_ind": "LOUIS",
    "lib_pr3_ind": None,
    "cod_sex_etu": "M",
    "cod_civ": "1",
    "tem_pr_usage": "N",
    "lib_pr_eta_civ": None,
    "cod_sex_eta_civ": None,
    "date_nai_ind": "2001-03-14",
    "tem_date_nai_rel": "O",
    "cod_typ_dep_pay_nai": "D",
    "cod_dep_pay_nai": "072",
    "cod_com_nai_etu": "72181",
    "lib_vil_nai_etu": "LE MANS",
    "cod_pay_nat": "100",
    "cod_nni_etu": "1010372181123",
    "cod_cle_nni_etu": "18",
    "dat_cre_ind": "2019-07-01 09:00:00",
    "dat_mod_ind": "2023-07-05 09:00:00",
}


def result(cod_ind=1, dip="LINFO", vrs=1, anu="2022", ses="1", adm="1", tre="ADM", men="B",
           obt="2023-06-20") -> dict:  # fmt: skip
    return {
        "cod_ind": cod_ind,
        "cod_dip": dip,
        "cod_vrs_vdi": vrs,
        "cod_anu": anu,
        "cod_ses": ses,
        "cod_adm": adm,
        "cod_tre": tre,
        "cod_men": men,
        "not_vdi": 12.5,
        "dat_obt_vdi": obt,
        "dat_cre_vdi": "2023-06-20 18:00:00",
        "dat_mod_vdi": "2023-06-20 18:00:00",
    }


def jury(dip="LINFO", vrs=1, anu="2022", ses="1", adm="1", state="T", date="2023-06-20"):
    return {
        "cod_dip": dip,
        "cod_vrs_vdi": vrs,
        "cod_anu": anu,
        "cod_ses": ses,
        "cod_adm": adm,
        "eta_avc_vdi": state,
        "dat_avc_vdi": f"{date} 19:00:00",
    }


def build_apogee(path: Path, persons: list[dict], results: list[dict], juries: list[dict]) -> Path:
    """A SQLite Apogée with the demo reference tables and the given rows."""
    conn = sqlite3.connect(path)
    for stmt in apogee_ddl("sqlite"):
        conn.execute(stmt)
    tables = {**reference_rows()}
    # A few départements are enough and keep each test fast.
    kept = ("042", "072", "075", "013", "02A", "02B", "971", "016")
    tables["commune"] = [r for r in tables["commune"] if r[2] in kept]
    for table, rows in tables.items():
        cols = TABLE_COLUMNS[table]
        conn.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", [tuple(r) for r in rows]
        )
    for table, rows in (("individu", persons), ("resultat_vdi", results),
                        ("grp_resultat_vdi", juries)):  # fmt: skip
        cols = TABLE_COLUMNS[table]
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [tuple(r[c] for c in cols) for r in rows],
        )
    conn.commit()
    conn.close()
    return path

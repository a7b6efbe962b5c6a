"""The demo Apogée database: real table and column names, realistic types and content.

Why Oracle DDL: the schema is written once in Oracle SQL and transpiled by sqlglot to
SQLite (the demo file) and PostgreSQL (tests), as the extraction query is. Content:
several sessions, failures, admissibility rows, unpublished juries, missing award
dates, local positive result codes (never only ``ADM``), intermediate diplomas and
diploma versions without an RNCP/RS mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpf_deposit.sources.reference import communes, countries

DDL = """
CREATE TABLE individu (
  cod_ind INTEGER NOT NULL PRIMARY KEY, cod_etu INTEGER, cod_nne_ind VARCHAR2(10),
  cod_cle_nne_ind VARCHAR2(1), lib_nom_pat_ind VARCHAR2(80), lib_nom_usu_ind VARCHAR2(80),
  lib_pr1_ind VARCHAR2(60), lib_pr2_ind VARCHAR2(60), lib_pr3_ind VARCHAR2(60),
  cod_sex_etu VARCHAR2(1), cod_civ VARCHAR2(1), tem_pr_usage VARCHAR2(1),
  lib_pr_eta_civ VARCHAR2(60), cod_sex_eta_civ VARCHAR2(1), date_nai_ind DATE,
  tem_date_nai_rel VARCHAR2(1), cod_typ_dep_pay_nai VARCHAR2(1), cod_dep_pay_nai VARCHAR2(3),
  cod_com_nai_etu VARCHAR2(5), lib_vil_nai_etu VARCHAR2(60), cod_pay_nat VARCHAR2(3),
  cod_nni_etu VARCHAR2(13), cod_cle_nni_etu VARCHAR2(2), dat_cre_ind TIMESTAMP,
  dat_mod_ind TIMESTAMP);
CREATE TABLE resultat_vdi (
  cod_ind INTEGER NOT NULL, cod_dip VARCHAR2(7) NOT NULL, cod_vrs_vdi INTEGER NOT NULL,
  cod_anu VARCHAR2(4) NOT NULL, cod_ses VARCHAR2(1) NOT NULL, cod_adm VARCHAR2(1) NOT NULL,
  cod_tre VARCHAR2(4), cod_men VARCHAR2(2), not_vdi NUMBER(6, 3), dat_obt_vdi DATE,
  dat_cre_vdi TIMESTAMP, dat_mod_vdi TIMESTAMP,
  PRIMARY KEY (cod_ind, cod_dip, cod_vrs_vdi, cod_anu, cod_ses, cod_adm));
CREATE TABLE grp_resultat_vdi (
  cod_dip VARCHAR2(7) NOT NULL, cod_vrs_vdi INTEGER NOT NULL, cod_anu VARCHAR2(4) NOT NULL,
  cod_ses VARCHAR2(1) NOT NULL, cod_adm VARCHAR2(1) NOT NULL, eta_avc_vdi VARCHAR2(1),
  dat_avc_vdi TIMESTAMP, PRIMARY KEY (cod_dip, cod_vrs_vdi, cod_anu, cod_ses, cod_adm));
CREATE TABLE typ_resultat (
  cod_tre VARCHAR2(4) NOT NULL PRIMARY KEY, lib_tre VARCHAR2(50), lic_tre VARCHAR2(20),
  cod_neg_tre INTEGER, tem_en_sve_tre VARCHAR2(1));
CREATE TABLE diplome (
  cod_dip VARCHAR2(7) NOT NULL PRIMARY KEY, lib_dip VARCHAR2(60), lic_dip VARCHAR2(25),
  cod_ndi VARCHAR2(2));
CREATE TABLE version_diplome (
  cod_dip VARCHAR2(7) NOT NULL, cod_vrs_vdi INTEGER NOT NULL, lic_vdi VARCHAR2(25),
  lib_web_vdi VARCHAR2(120), daa_deb_val_vdi VARCHAR2(4), daa_fin_val_vdi VARCHAR2(4),
  PRIMARY KEY (cod_dip, cod_vrs_vdi));
CREATE TABLE mention (
  cod_men VARCHAR2(2) NOT NULL PRIMARY KEY, lib_men VARCHAR2(50), lic_men VARCHAR2(10),
  tem_en_sve_men VARCHAR2(1));
CREATE TABLE pays (
  cod_pay VARCHAR2(3) NOT NULL PRIMARY KEY, lib_pay VARCHAR2(80), lib_nat VARCHAR2(80),
  tem_en_sve_pay VARCHAR2(1));
CREATE TABLE commune (
  cod_com VARCHAR2(5) NOT NULL PRIMARY KEY, lib_com VARCHAR2(60), cod_dep VARCHAR2(3),
  tem_en_sve_com VARCHAR2(1));
CREATE TABLE cdc_vdi_certif_map (
  cod_dip VARCHAR2(7) NOT NULL, cod_vrs_vdi INTEGER NOT NULL, daa_deb VARCHAR2(4) NOT NULL,
  daa_fin VARCHAR2(4), certif_type VARCHAR2(4) NOT NULL, certif_code VARCHAR2(14) NOT NULL,
  PRIMARY KEY (cod_dip, cod_vrs_vdi, daa_deb))
"""

TABLE_COLUMNS = {
    "individu": (
        "cod_ind", "cod_etu", "cod_nne_ind", "cod_cle_nne_ind", "lib_nom_pat_ind",
        "lib_nom_usu_ind", "lib_pr1_ind", "lib_pr2_ind", "lib_pr3_ind", "cod_sex_etu",
        "cod_civ", "tem_pr_usage", "lib_pr_eta_civ", "cod_sex_eta_civ", "date_nai_ind",
        "tem_date_nai_rel", "cod_typ_dep_pay_nai", "cod_dep_pay_nai", "cod_com_nai_etu",
        "lib_vil_nai_etu", "cod_pay_nat", "cod_nni_etu", "cod_cle_nni_etu", "dat_cre_ind",
        "dat_mod_ind",
    ),
    "resultat_vdi": (
        "cod_ind", "cod_dip", "cod_vrs_vdi", "cod_anu", "cod_ses", "cod_adm", "cod_tre",
        "cod_men", "not_vdi", "dat_obt_vdi", "dat_cre_vdi", "dat_mod_vdi",
    ),
    "grp_resultat_vdi": (
        "cod_dip", "cod_vrs_vdi", "cod_anu", "cod_ses", "cod_adm", "eta_avc_vdi", "dat_avc_vdi",
    ),
    "typ_resultat": ("cod_tre", "lib_tre", "lic_tre", "cod_neg_tre", "tem_en_sve_tre"),
    "diplome": ("cod_dip", "lib_dip", "lic_dip", "cod_ndi"),
    "version_diplome": (
        "cod_dip", "cod_vrs_vdi", "lic_vdi", "lib_web_vdi", "daa_deb_val_vdi", "daa_fin_val_vdi",
    ),
    "mention": ("cod_men", "lib_men", "lic_men", "tem_en_sve_men"),
    "pays": ("cod_pay", "lib_pay", "lib_nat", "tem_en_sve_pay"),
    "commune": ("cod_com", "lib_com", "cod_dep", "tem_en_sve_com"),
    "cdc_vdi_certif_map": (
        "cod_dip", "cod_vrs_vdi", "daa_deb", "daa_fin", "certif_type", "certif_code",
    ),
}  # fmt: skip

TYP_RESULTAT = (
    ("ADM", "Admis", "Admis", 1, "O"),
    ("ADJ", "Admis par décision du jury", "Admis jury", 1, "O"),
    ("AJ", "Ajourné", "Ajourné", 0, "O"),
    ("ABI", "Absence injustifiée", "Abs. inj.", 0, "O"),
    ("DEF", "Défaillant", "Défaillant", 0, "O"),
)
MENTIONS = (
    ("P", "Passable", "Passable", "O"),
    ("AB", "Assez bien", "Assez bien", "O"),
    ("B", "Bien", "Bien", "O"),
    ("TB", "Très bien", "Très bien", "O"),
    ("TF", "Très bien avec félicitations du jury", "TB félic.", "O"),
    ("HO", "Honorable", "Honorable", "N"),
)


@dataclass(frozen=True)
class Vdi:
    cod_dip: str
    version: int
    label: str
    nature: str
    weight: float
    first_year: int  # first academic year the version is open
    last_year: int | None
    # (first_year, last_year, type, code) of the mapping; () when deliberately unmapped
    certifications: tuple[tuple[int, int | None, str, str], ...]


# Fictitious but plausible RNCP/RS codes; a few versions are deliberately unmapped.
CATALOGUE = (
    Vdi("LDROIT", 1, "Licence Droit", "LI", 10, 2016, None,
        ((2016, 2023, "RNCP", "24438"), (2024, None, "RNCP", "39869"))),
    Vdi("LECOG", 1, "Licence Économie et gestion", "LI", 8, 2016, None,
        ((2016, None, "RNCP", "24444"),)),
    Vdi("LPSYCH", 1, "Licence Psychologie", "LI", 7, 2016, None,
        ((2016, None, "RNCP", "24473"),)),
    Vdi("LINFO", 1, "Licence Informatique", "LI", 6, 2016, None,
        ((2016, None, "RNCP", "24514"),)),
    Vdi("LLEA", 1, "Licence Langues étrangères appliquées", "LI", 4, 2016, None,
        ((2016, None, "RNCP", "24467"),)),
    Vdi("LPNUM", 2, "Licence professionnelle Métiers du numérique", "LP", 3, 2019, None,
        ((2019, None, "RNCP", "30102"),)),
    Vdi("MDROIT", 1, "Master Droit des affaires", "MA", 5, 2018, None,
        ((2018, None, "RNCP", "34034"),)),
    Vdi("MINFO", 1, "Master Informatique", "MA", 4, 2018, 2023,
        ((2018, 2023, "RNCP", "34126"),)),
    Vdi("MINFO", 2, "Master Informatique (maquette 2024)", "MA", 4, 2024, None, ()),
    Vdi("MMEEF", 1, "Master MEEF premier degré", "MA", 4, 2018, None,
        ((2018, None, "RNCP", "34862"),)),
    Vdi("BUTGEA", 1, "BUT Gestion des entreprises et des administrations", "BU", 5, 2021, None,
        ((2021, None, "RNCP", "35369"),)),
    Vdi("DUPHOT", 1, "DU Photographie et image", "DU", 1, 2016, None, ()),
    Vdi("CLESB2", 1, "CLES B2 anglais", "CE", 3, 2016, None, ((2016, None, "RS", "5875"),)),
    Vdi("DAEUA", 1, "DAEU option A (littéraire)", "DA", 2, 2016, None,
        ((2016, None, "RNCP", "37919"),)),
)  # fmt: skip
INTERMEDIATE = Vdi("DEUGDR", 1, "DEUG Droit", "DG", 0, 2016, None, ())
YEARS = tuple(range(2020, 2026))  # academic years 2020-2021 to 2025-2026


def reference_rows() -> dict[str, list[tuple]]:
    """Reference tables: results, mentions, diplomas, countries, communes, mapping."""
    vdis = (*CATALOGUE, INTERMEDIATE)
    diplomas = {v.cod_dip: (v.cod_dip, v.label, v.label[:25], v.nature) for v in vdis}
    mapping = [
        # codes carry their prefix (RNCP24438): the mapping refuses a bare number
        (v.cod_dip, v.version, str(a), None if b is None else str(b), t, f"{t}{c}")
        for v in vdis
        for a, b, t, c in v.certifications
    ]
    pays = [("100", "FRANCE", "FRANCAIS(E)", "O")] + [
        (code[2:], name, None, "O") for code, name in sorted(countries().items())
    ]
    commune = [
        (c.code, c.name, ("0" + c.department) if len(c.department) == 2 else c.department, "O")
        for c in communes()
    ]
    return {
        "typ_resultat": list(TYP_RESULTAT),
        "mention": list(MENTIONS),
        "diplome": list(diplomas.values()),
        "version_diplome": [
            (
                v.cod_dip,
                v.version,
                v.label[:25],
                v.label,
                str(v.first_year),
                None if v.last_year is None else str(v.last_year),
            )
            for v in vdis
        ],
        "pays": pays,
        "commune": commune,
        "cdc_vdi_certif_map": mapping,
    }


def mapping_csv_rows() -> list[tuple]:
    """The same mapping as a CSV file would carry it (canonical header)."""
    return [
        (dip, vrs, first, last or "", t, c)
        for dip, vrs, first, last, t, c in reference_rows()["cdc_vdi_certif_map"]
    ]


def jury_date(year: int, session: str, dip_index: int) -> str:
    """Deliberation date of a jury: June/July for session 0/1, September for session 2."""
    if session == "2":
        return f"{year + 1}-09-{10 + dip_index % 15:02d}"
    return f"{year + 1}-{6 + dip_index % 2:02d}-{5 + (dip_index * 3) % 23:02d}"


def draw_results(
    rng: np.random.Generator, cod_ind: np.ndarray, graduate: np.ndarray
) -> tuple[list[tuple], list[tuple]]:
    """RESULTAT_VDI rows and their GRP_RESULTAT_VDI juries.

    Graduates pass one diploma version (some after a failed session or year, some also
    pass the intermediate DEUG); other people only fail. Juries of session 2 of the
    last year are still in progress (not published); one random jury is held back.
    """
    n = len(cod_ind)
    weights = np.array([v.weight for v in CATALOGUE])
    years = rng.choice(YEARS, size=n)
    pick = rng.choice(len(CATALOGUE), size=n, p=weights / weights.sum())
    # A version not open that year gives way to the open one of the same diploma.
    vdi_index = {(v.cod_dip, v.version): i for i, v in enumerate(CATALOGUE)}
    path = rng.random(n)
    mention = rng.choice(
        np.array(["P", "AB", "B", "TB", "TF", "HO", ""], dtype=object),
        size=n,
        p=[0.40, 0.29, 0.18, 0.08, 0.01, 0.002, 0.038],
    )
    positive = np.where(rng.random(n) < 0.05, "ADJ", "ADM")
    no_date = rng.random(n) < 0.01
    admissibility = rng.random(n) < 0.15
    deug = rng.random(n) < 0.25
    marks = np.round(10 + rng.random(n) * 8, 3)
    rows: list[tuple] = []
    groups: set[tuple] = set()
    position = {id(v): k for k, v in enumerate((*CATALOGUE, INTERMEDIATE))}

    def add(i, vdi: Vdi, year: int, ses: str, adm: str, tre: str, men, obt: bool):
        date = jury_date(year, ses, position[id(vdi)])
        rows.append(
            (
                int(cod_ind[i]),
                vdi.cod_dip,
                vdi.version,
                str(year),
                ses,
                adm,
                tre,
                men,
                float(marks[i]) if tre in ("ADM", "ADJ") else float(marks[i]) - 4,
                date if obt else None,
                f"{date} 18:00:00",
                f"{date} 18:30:00",
            )
        )
        groups.add((vdi.cod_dip, vdi.version, str(year), ses, adm))

    for i in range(n):
        year = int(years[i])
        vdi = CATALOGUE[int(pick[i])]
        if not (vdi.first_year <= year <= (vdi.last_year or 9999)):
            other = 2 if vdi.version == 1 else 1
            vdi = CATALOGUE[vdi_index.get((vdi.cod_dip, other), int(pick[i]))]
        men = mention[i] or None
        if not graduate[i]:
            add(i, vdi, year, "1", "1", "AJ", None, False)
            add(i, vdi, year, "2", "1", "DEF" if path[i] < 0.3 else "AJ", None, False)
            continue
        ok = str(positive[i])
        has_date = not no_date[i]
        if path[i] < 0.10:  # single annual session
            add(i, vdi, year, "0", "1", ok, men, has_date)
        elif path[i] < 0.22:  # failed session 1, passed session 2
            add(i, vdi, year, "1", "1", "AJ", None, False)
            add(i, vdi, year, "2", "1", ok, men, has_date)
        elif path[i] < 0.30 and year > YEARS[0]:  # failed the year before
            add(i, vdi, year - 1, "1", "1", "AJ", None, False)
            add(i, vdi, year - 1, "2", "1", "ABI", None, False)
            add(i, vdi, year, "1", "1", ok, men, has_date)
        else:
            add(i, vdi, year, "1", "1", ok, men, has_date)
        if admissibility[i]:
            add(i, vdi, year, "1", "0", "ADM", None, False)
        if vdi.cod_dip == "LDROIT" and deug[i] and year > YEARS[0]:
            add(i, INTERMEDIATE, year - 1, "1", "1", "ADM", None, True)

    held_back = sorted(groups)[int(rng.integers(len(groups)))]
    grp = []
    for g in sorted(groups):
        dip_i = [v.cod_dip for v in (*CATALOGUE, INTERMEDIATE)].index(g[0])
        unpublished = (g[2] == str(YEARS[-1]) and g[3] == "2") or g == held_back
        state = ("E" if g != held_back else "A") if unpublished else "T"
        grp.append((*g, state, f"{jury_date(int(g[2]), g[3], dip_i)} 19:00:00"))
    return rows, grp


MAPPING_HEADER = (
    "diploma_code",
    "diploma_version",
    "first_year",
    "last_year",
    "certification_type",
    "certification_code",
)


def write_mapping_csv(path) -> None:
    """The demo's certification map as the CSV a ``certification_map`` key names
    (mode 0600, written atomically, replacing any older one)."""
    import csv

    from cpf_deposit.files import private_file

    with private_file(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MAPPING_HEADER)
        w.writerows(mapping_csv_rows())

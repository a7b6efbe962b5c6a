"""A second error model for the demo Apogée database, written apart from the gate's rules.

Why: the identity gate was scored on errors injected by the people who wrote its rules
(``demo/errors.py``). This model is built only from the published material: the CDC
guide to the *accusé de traitement* (V3, the matching funnel and what it tolerates),
the institutions' webinar of 16 March 2023 (recurrent errors), and the research notes
``identity-matching.md`` (error types and rates, §3.4; population, §3.1),
``source-systems.md`` (Apogée pitfalls, §5) and ``cdc-format.md``. Neither
``demo/errors.py`` nor the quality rules were read to write it.

What it does: it draws the demo's clean population (true civil status,
:mod:`cpf_deposit.demo.population`), writes it into the Apogée schema of
:mod:`cpf_deposit.demo.apogee` without the demo's injected errors, then gives each person
at most one *kind* (:data:`KINDS`) at the kind's rate, among the persons the kind can
apply to. Some kinds are rejected by the CDC, some only when the holder has homonyms,
some are tolerated (accents, case, a usage name the extraction drops): the tolerated ones
measure the gate's false positives. Apart from the kind, the NIR column gets its own
state (:data:`NIR_SHARES`: own, absent, mistyped, a parent's, temporary), so a NIR
cross-check is measured on numbers as a scolarité office holds them. The truth (kind,
variant, NIR state, true civil status) is written to a separate SQLite file, never into
the database the extraction reads.

Rates are per person and come from ``identity-matching.md`` §3.4 (the table calibrated
on the national 7.75 % rejection rate) where it gives one; each kind's ``source`` says
where its rate comes from, and says "assumed" where no file gives one.

Deterministic per seed. Personal values are synthetic and never logged.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NONE = "none"
TRUTH_FILE = "truth.sqlite"
APOGEE_FILE = "apogee.sqlite"
MAP_FILE = "certification_map.csv"
TRUTH_TABLE = "independent_truth"
FILE_MODE = 0o600
FIRST_COD_IND = 100_001
CODE_SHARE = 0.45  # French births whose INSEE code Apogée holds (COD_COM_NAI_ETU is sparse)

# What COD_NNI_ETU holds, per group of persons. ASSUMPTION: no research file gives the
# fill rate or the quality of the NIR in Apogée (source-systems.md §1.1 only names the
# columns); these shares are this model's guess, kept apart from the kinds so that the
# gate's NIR cross-check is measured on absent, mistyped and borrowed numbers too:
# "own" the holder's NIR (true sex, year, month, birthplace, whatever the civil-status
# columns say); "absent"; "typo" one digit wrong (the key no longer fits); "parent" a
# parent's valid NIR typed from an old attestation (other sex or year, other place);
# "temporary" a NIA (first digit 7 or 8) given while an immatriculation is pending.
NIR_SHARES = {
    "born_in_france": {"own": 0.85, "absent": 0.12, "typo": 0.015, "parent": 0.015},
    "born_abroad": {"own": 0.55, "absent": 0.35, "temporary": 0.10},
    "not_in_sngi": {"absent": 0.85, "temporary": 0.15},
}

IM = "identity-matching.md"
SS = "source-systems.md"


@dataclass(frozen=True)
class Kind:
    """One kind of discrepancy between the source record and the civil status.

    ``rate``: share of all persons (the kind is drawn among the persons it can apply to).
    ``wrong``: what would be sent contradicts the civil status (a value differs, a person
    is there twice); omissions the format allows and spellings the CDC folds are not wrong.
    ``detectable``: whether a check of the source alone can see it ("yes", "partly", "no").
    """

    name: str
    rate: float
    source: str
    wrong: bool
    detectable: str
    reason: str
    side: str = "source"  # "register": the source is right, the SNGI side differs


_K = Kind
# Order matters: kinds with small pools are drawn first (each person gets one kind).
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        _K("birth_name_double_hyphen", 0.001,
           f"{IM} §3.4 row 2 (0.9 % birth-name punctuation, split here); §1.3 double names "
           "NOM1--NOM2 for births 2005-2010", True, "partly",
           "the source cannot tell which separator the SNGI holds"),
        _K("birth_name_particle", 0.0025,
           f"{IM} §3.4 row 2 (split here); webinar: apostrophes, tirets", True, "partly",
           "a glued particle (LEGOFF) is a valid name too"),
        _K("birth_name_hyphen_space", 0.0035,
           f"{IM} §3.4 row 2 (split here); webinar: tirets en trop ou manquants", True, "partly",
           "hyphen and space are both valid in a birth name"),
        _K("ligature", 0.002,
           f"{IM} §3.4 row 2 (Æ/Œ, split here); webinar: caractères spéciaux (Lætitia) still "
           "discriminant", True, "yes", ""),
        _K("compound_first_name_altered", 0.005,
           f"{IM} §3.4 row 9; guide V3: hyphen of Jean-François discriminant", True, "partly",
           "a first name cut to its first part (JEAN for JEAN-PIERRE) looks complete"),
        _K("usage_name_as_birth_name", 0.006,
           f"{IM} §3.4 row 5; {IM} §1.2", True, "partly",
           "when the usage name is not kept apart, the married name looks like a birth name"),
        _K("absent_from_sngi", 0.024,
           f"{IM} §3.4 row 1 (foreign students without NIR); webinar", False, "no",
           "right data; only the SNGI knows the person has no NIR", side="register"),
        _K("transliteration", 0.005, f"{IM} §3.4 row 7 (MOHAMED/MOHAMMED)", True, "no",
           "both spellings are real names"),
        _K("commune_country_confused", 0.003,
           f"{SS} §5 pitfall 8 (COD_TYP_DEP_PAY_NAI); brief: commune vs country "
           "(rate assumed)", True, "yes", ""),
        _K("day_month_swapped", 0.008, f"{IM} §3.4 row 11 (2.0 % day/month, split here)",
           True, "partly", "both readings are valid dates; only a NIR gives the month"),
        _K("day_month_default", 0.004, f"{IM} §3.4 row 11 (01/01 default)", True, "partly",
           "1 January is also a real birth date"),
        _K("birth_day_wrong", 0.008, f"{IM} §3.4 row 11 (typo)", True, "no",
           "a wrong but plausible birth day"),
        _K("first_names_merged", 0.008,
           f"{IM} §3.4 row 3; webinar: prénoms 1 et 2 dans la même balise", True, "yes", ""),
        _K("first_names_swapped", 0.003, "webinar: inversement prénom/prénom (rate assumed)",
           True, "no", "the second first name is a valid first name"),
        _K("first_names_2_3_wrong", 0.01, f"{IM} §3.4 row 15 (hypothesis A)", True, "no",
           "another valid first name"),
        _K("typo", 0.007, f"{IM} §3.4 row 4", True, "no", "a plausible spelling"),
        _K("name_inverted", 0.005, f"{IM} §3.4 row 6; webinar", True, "yes", ""),
        _K("sex_wrong", 0.005, f"{IM} §3.4 row 8; webinar: sexe ne correspond pas au prénom",
           True, "partly", "epicene first names (Camille, Dominique) say nothing"),
        _K("birth_year_wrong", 0.003, f"{IM} §3.4 row 10", True, "partly",
           "a year one off is plausible; only a NIR gives the year"),
        _K("sngi_duplicate", 0.0015, f"{IM} §3.2 (duplicate identities in the SNGI)", False,
           "no", "right data; the SNGI holds the person twice", side="register"),
        _K("duplicate_person", 0.003, f"brief; {SS} §1.1 (COD_ETU may be NULL) (rate assumed)",
           True, "yes", ""),
        _K("usage_first_name", 0.005,
           f"{SS} §1.1 and §5 pitfall 1 (TEM_PR_USAGE, LIB_PR_ETA_CIV) (rate assumed)", False,
           "yes", ""),
        _K("whitespace", 0.005,
           f"{SS} §5 pitfall 3 (double, leading, trailing spaces) (rate assumed)", False,
           "yes", ""),
        _K("accents_case", 0.02,
           f"guide V3 (accents ignored); webinar (Lea/Léa); {SS} §5 pitfall 3 "
           "(rate assumed)", False, "yes", ""),
        _K("birth_date_estimated", 0.02,
           f"{IM} §3.4 row 12 (day/month nil); {SS} §5 pitfall 9 (TEM_DATE_NAI_REL)", False,
           "yes", ""),
        _K("commune_wrong", 0.03,
           f"{IM} §3.4 row 13 (postal code in the INSEE field, another commune)", True,
           "partly", "another commune of the same département is a valid code"),
        _K("birthplace_missing", 0.05, f"{IM} §3.4 row 14 (commune nil)", False, "yes", ""),
        _K("usage_name_copy", 0.05,
           f"{SS} §5 pitfall 4 (usage name often a copy of the birth name; rate "
           "assumed)", False, "yes", ""),
        _K("city_label_variant", 0.10,
           f"{SS} §5 pitfall 5 (free-text city: ST, hyphens, case; rate assumed)", False,
           "yes", ""),
        _K("first_names_2_3_missing", 0.25,
           f"{IM} §3.4 row 16 (40 % without prénoms 2/3) minus the 15 % who have none "
           "(§3.1)", False, "no", "the source holds no second first name to compare"),
    )
}  # fmt: skip

_LIGATURE_OUT = str.maketrans({"Œ": "OE", "Æ": "AE", "œ": "oe", "æ": "ae"})
_PARTICLE = re.compile(r"^(DE LA|DE|DU|DES|LE|LA|VAN|EL|BEN|DA|DI|DOS|MAC|MC) (?=\S)|^[DL]'")
_TRANSLIT = (
    ("MOHAMMED", "MOHAMED"), ("MOHAMED", "MOHAMMED"), ("MUHAMMAD", "MOHAMED"),
    ("OU", "U"), ("KH", "K"), ("CH", "SH"), ("SH", "CH"), ("DJ", "J"), ("EE", "I"),
    ("PH", "F"), ("TH", "T"), ("Y", "I"), ("I", "Y"), ("Q", "K"), ("K", "Q"), ("AA", "A"),
)  # fmt: skip
_DOUBLE = re.compile(r"([BCDFGKLMNPRST])\1")
_SINGLE = re.compile(r"(?<=[AEIOUY])([BDFGKLMNPRST])(?=[AEIOUY])")
_LETTERS = "ABCDEFGHIJKLMNOPRSTUVZ"
_ACCENTS = {"E": "É", "A": "À", "I": "Ï", "O": "Ô", "U": "Û"}


def spell_out(value: str | None) -> str | None:
    """Œ/Æ written OE/AE: no civil status writes RAPHÆL, which the demo population does."""
    return None if value is None else value.translate(_LIGATURE_OUT)


def fold(value: str | None) -> str | None:
    """Upper case without accents (the SNGI spelling); punctuation kept."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKD", value.upper())
    return "".join(c for c in text if not unicodedata.combining(c))


# --------------------------------------------------------------------------------------
# The clean source
# --------------------------------------------------------------------------------------


@dataclass
class CleanSource:
    """The demo population written the Apogée way, with no error: the truth."""

    pop: object  # cpf_deposit.demo.population.Population
    ind: dict[str, np.ndarray]  # INDIVIDU columns (TABLE_COLUMNS["individu"])
    graduate: np.ndarray
    results: list[tuple]
    groups: list[tuple]

    def __len__(self) -> int:
        return len(self.graduate)


def draw_clean(graduates: int, seed: int) -> CleanSource:
    """The demo's clean population (5 % more people who only fail), INDIVIDU without the
    demo's injected errors: civil-status names and sex, true birth date and place.

    Birthplaces follow Apogée: département or country plus a free-text city, the INSEE
    code for 45 % of French births (``COD_COM_NAI_ETU`` is recent and sparse,
    source-systems.md §1.1); the city label is the official commune name.
    """
    from cpf_deposit.demo.apogee import draw_results
    from cpf_deposit.demo.build import individu_columns
    from cpf_deposit.demo.population import draw_population
    from cpf_deposit.sources.reference import communes

    if graduates < 1:
        raise ValueError("graduates must be at least 1")
    rng = np.random.default_rng([seed, 0])
    pop = draw_population(rng, graduates + max(1, graduates // 20))
    n = len(pop)
    graduate = np.zeros(n, dtype=bool)
    graduate[rng.permutation(n)[:graduates]] = True
    ind = individu_columns(rng, pop)
    for private in ("_postal", "_neighbour_label"):
        ind.pop(private, None)
    ind["cod_ind"] = (FIRST_COD_IND + np.arange(n)).astype(object)
    ind["lib_nom_pat_ind"] = np.array([spell_out(v) for v in pop.birth_name], dtype=object)
    ind["lib_nom_usu_ind"] = np.array([spell_out(v) for v in pop.usage_name], dtype=object)
    ind["lib_pr1_ind"] = np.array([spell_out(v) for v in pop.first_1], dtype=object)
    ind["lib_pr2_ind"] = np.array([spell_out(v) for v in pop.first_2], dtype=object)
    ind["lib_pr3_ind"] = np.array([spell_out(v) for v in pop.first_3], dtype=object)
    ind["cod_sex_etu"] = pop.sex.copy()
    ind["cod_civ"] = np.where(pop.sex == "M", "1", "2").astype(object)
    ind["tem_pr_usage"] = np.full(n, "N", dtype=object)
    ind["lib_pr_eta_civ"] = np.full(n, None, dtype=object)
    ind["cod_sex_eta_civ"] = np.full(n, None, dtype=object)
    ind["date_nai_ind"] = pop.birth_date.astype(str).astype(object)
    ind["tem_date_nai_rel"] = np.full(n, "O", dtype=object)
    ref = {c.code: c for c in communes()}
    has_code = rng.random(n) < CODE_SHARE
    typ = np.empty(n, dtype=object)
    dep = np.empty(n, dtype=object)
    com = np.full(n, None, dtype=object)
    label = np.empty(n, dtype=object)
    for i in range(n):
        code = pop.birth_code[i]
        if pop.born_abroad[i]:
            typ[i], dep[i], label[i] = "P", code[2:], pop.foreign_city[i]
            continue
        c = ref[code]
        typ[i] = "D"
        dep[i] = "0" + c.department if len(c.department) == 2 else c.department
        com[i] = code if has_code[i] else None
        label[i] = c.name
    ind["cod_typ_dep_pay_nai"], ind["cod_dep_pay_nai"] = typ, dep
    ind["cod_com_nai_etu"], ind["lib_vil_nai_etu"] = com, label
    results, groups = draw_results(rng, ind["cod_ind"], graduate)
    return CleanSource(pop, ind, graduate, results, groups)


# --------------------------------------------------------------------------------------
# The error model
# --------------------------------------------------------------------------------------


@dataclass
class Perturbed:
    """The source with its errors, and the truth kept apart from it."""

    ind: dict[str, np.ndarray]  # INDIVIDU columns, duplicated persons appended
    results: list[tuple]
    groups: list[tuple]
    truth: object  # pandas DataFrame, one row per INDIVIDU row (see truth_frame)
    allocation: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # kind -> (persons wanted, persons given the kind, persons the kind could apply to)


def _eligible(clean: CleanSource) -> dict[str, np.ndarray]:
    """Who each kind can apply to (a kind needs something to alter)."""
    pop, ind = clean.pop, clean.ind
    n = len(clean)
    everyone = np.ones(n, dtype=bool)
    name = ind["lib_nom_pat_ind"]
    first = ind["lib_pr1_ind"]
    has_2 = np.array([v is not None for v in ind["lib_pr2_ind"]])
    french = ~pop.born_abroad
    day = np.array([int(d[8:10]) for d in ind["date_nai_ind"]])
    month = np.array([int(d[5:7]) for d in ind["date_nai_ind"]])
    particle = np.array([bool(_PARTICLE.match(v)) for v in name])
    separator = np.array([("--" not in v) and ("-" in v or " " in v) for v in name])
    ligature = np.array(
        [
            ("OE" in a or "AE" in a or "OE" in b or "AE" in b)
            for a, b in zip(name, first, strict=True)
        ]
    )
    return {
        "birth_name_double_hyphen": np.array(["--" in v for v in name]),
        "birth_name_particle": particle,
        "birth_name_hyphen_space": separator,
        "ligature": ligature,
        "compound_first_name_altered": np.array(["-" in v for v in first]),
        "usage_name_as_birth_name": np.array([v is not None for v in pop.usage_name]),
        "absent_from_sngi": pop.born_abroad.copy(),
        "transliteration": pop.born_abroad.copy(),
        "commune_country_confused": everyone,
        "day_month_swapped": (day <= 12) & (day != month),
        "day_month_default": ~((day == 1) & (month == 1)),
        "birth_day_wrong": everyone,
        "first_names_merged": has_2,
        "first_names_swapped": has_2,
        "first_names_2_3_wrong": has_2,
        "typo": everyone,
        "name_inverted": everyone,
        "sex_wrong": everyone,
        "birth_year_wrong": everyone,
        "sngi_duplicate": everyone,
        "duplicate_person": clean.graduate.copy(),
        "usage_first_name": everyone,
        "whitespace": everyone,
        "accents_case": everyone,
        "birth_date_estimated": everyone,
        "commune_wrong": french,
        "birthplace_missing": everyone,
        "usage_name_copy": np.array([v is None for v in pop.usage_name]),
        "city_label_variant": french & np.array([v is None for v in ind["cod_com_nai_etu"]]),
        "first_names_2_3_missing": has_2,
    }


def allocate(
    clean: CleanSource, rng: np.random.Generator, rates: dict[str, float] | None = None
) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    """One kind per person: for each kind in :data:`KINDS` order, Binomial(n, rate)
    persons drawn among those it applies to and still without a kind."""
    rates = {k.name: k.rate for k in KINDS.values()} | (rates or {})
    n = len(clean)
    kind = np.full(n, NONE, dtype=object)
    eligible = _eligible(clean)
    allocation = {}
    for name in KINDS:
        wanted = int(rng.binomial(n, rates[name])) if rates[name] > 0 else 0
        pool = np.flatnonzero(eligible[name] & (kind == NONE))
        take = min(wanted, len(pool))
        if take:
            kind[rng.choice(pool, size=take, replace=False)] = name
        allocation[name] = (wanted, take, int(eligible[name].sum()))
    return kind, allocation


def _typo(rng: np.random.Generator, value: str) -> str:
    """One keystroke wrong (substitution, deletion, doubling, transposition) that folding
    does not undo."""
    letters = [k for k, c in enumerate(value) if c.isalpha()]
    for _ in range(20):
        k = int(letters[int(rng.integers(len(letters)))])
        op = int(rng.integers(4))
        if op == 0:
            out = value[:k] + _LETTERS[int(rng.integers(len(_LETTERS)))] + value[k + 1 :]
        elif op == 1 and len(letters) > 2:
            out = value[:k] + value[k + 1 :]
        elif op == 2:
            out = value[:k] + value[k] + value[k:]
        elif k + 1 < len(value) and value[k + 1].isalpha():
            out = value[:k] + value[k + 1] + value[k] + value[k + 2 :]
        else:
            continue
        if fold(out) != fold(value):
            return out
    return value + "E"


def _transliterate(rng: np.random.Generator, value: str) -> str | None:
    """Another transliteration of a name (MOHAMED/MOHAMMED, OU/U, Y/I...), or None."""
    options = [(a, b) for a, b in _TRANSLIT if a in value]
    options += [("double", "")] if _DOUBLE.search(value) else []
    options += [("single", "")] if _SINGLE.search(value) else []
    if not options:
        return None
    a, b = options[int(rng.integers(len(options)))]
    if a == "double":
        return _DOUBLE.sub(r"\1", value, count=1)
    if a == "single":
        return _SINGLE.sub(r"\1\1", value, count=1)
    at = [m.start() for m in re.finditer(re.escape(a), value)]
    k = at[int(rng.integers(len(at)))]
    return value[:k] + b + value[k + len(a) :]


def _add_accent(value: str, rng: np.random.Generator) -> str:
    spots = [k for k, c in enumerate(value) if c in _ACCENTS]
    if not spots:
        return value.title()
    k = spots[int(rng.integers(len(spots)))]
    return value[:k] + _ACCENTS[value[k]] + value[k + 1 :]


def _shift_date(date: dt.date, years: int) -> dt.date:
    try:
        return date.replace(year=date.year + years)
    except ValueError:  # 29 February
        return date.replace(year=date.year + years, day=28)


def nir_of(sex: str, date: str, place: str, order: int, first: str | None = None):
    """(13-character NIR, 2-digit key) for sex, ISO birth date and INSEE birthplace
    (commune, or 99 + country); Corsica is 20 before 1976 as INSEE numbered it."""
    if place[:2] in ("2A", "2B") and date[:4] < "1976":
        place = "20" + place[2:]
    head = first or ("1" if sex == "M" else "2")
    body = f"{head}{date[2:4]}{date[5:7]}{place}{order:03d}"
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return body, f"{97 - number % 97:02d}"


def assign_nir(
    clean: CleanSource, kind: np.ndarray, rng: np.random.Generator, ind: dict
) -> np.ndarray:
    """Fill COD_NNI_ETU/COD_CLE_NNI_ETU per :data:`NIR_SHARES`; returns each person's
    NIR state. Independent of the kind: an own NIR tells the truth even when the
    civil-status columns are wrong."""
    pop = clean.pop
    n = len(clean)
    group = np.where(
        kind == "absent_from_sngi",
        "not_in_sngi",
        np.where(pop.born_abroad, "born_abroad", "born_in_france"),
    )
    state = np.empty(n, dtype=object)
    u = rng.random(n)
    for g, shares in NIR_SHARES.items():
        sel = group == g
        edges = np.cumsum(list(shares.values()))
        pick = np.minimum(np.searchsorted(edges, u[sel] * edges[-1], side="right"), len(edges) - 1)
        state[sel] = np.array(list(shares), dtype=object)[pick]
    codes = sorted({str(c) for c in pop.birth_code})
    orders = rng.integers(1, 1000, n)
    number = np.full(n, None, dtype=object)
    key = np.full(n, None, dtype=object)
    for i in range(n):
        date, place, sex = clean.ind["date_nai_ind"][i], str(pop.birth_code[i]), pop.sex[i]
        s = state[i]
        if s == "absent":
            continue
        if s == "temporary":
            body, k = nir_of(sex, date, place, int(orders[i]), first=str(rng.choice(("7", "8"))))
        elif s == "parent":
            year = int(date[:4]) - int(rng.integers(22, 40))
            month = int(rng.integers(1, 13))
            parent_sex = str(rng.choice(("M", "F")))
            other = codes[int(rng.integers(len(codes)))]
            body, k = nir_of(parent_sex, f"{year:04d}-{month:02d}-01", other, int(orders[i]))
        else:
            body, k = nir_of(sex, date, place, int(orders[i]))
            if s == "typo":
                at = int(rng.integers(7, 13))  # commune or order digits: still well formed
                body = (
                    body[:at]
                    + str((int(body[at]) + 1 + int(rng.integers(8))) % 10)
                    + body[at + 1 :]
                )
        number[i], key[i] = body, k
    ind["cod_nni_etu"], ind["cod_cle_nni_etu"] = number, key
    return state


class _Applier:
    """Applies one kind to one person's INDIVIDU row (in place); returns the variant."""

    def __init__(self, rng: np.random.Generator, clean: CleanSource, ind: dict):
        from cpf_deposit.demo.names import draw_first_names
        from cpf_deposit.sources.reference import communes

        self.rng, self.clean, self.ind = rng, clean, ind
        self.draw_first_names = draw_first_names
        by_dep: dict[str, list] = {}
        for c in communes():
            by_dep.setdefault(c.department, []).append(c)
        self.by_dep = by_dep
        self.ref = {c.code: c for c in communes()}
        self.departments = sorted(d for d in by_dep if len(d) == 2)

    def pick(self, options: tuple[str, ...], p: tuple[float, ...] | None = None) -> str:
        return str(self.rng.choice(options, p=p))

    def other_first_name(self, i: int, sex: str | None = None) -> str:
        pop = self.clean.pop
        sex = sex or pop.sex[i]
        for _ in range(10):
            names, _ = self.draw_first_names(
                self.rng, np.array([sex], dtype=object), pop.years[i : i + 1]
            )
            if fold(names[0]) not in {fold(self.ind[c][i]) for c in _FIRST}:
                return spell_out(names[0])
        return spell_out(names[0]) + "E"

    def __call__(self, kind: str, i: int) -> str:
        return getattr(self, kind)(i)

    # -- birth name ------------------------------------------------------------------
    def birth_name_double_hyphen(self, i):
        v = self.pick(("hyphen", "space"))
        sep = "-" if v == "hyphen" else " "
        self.ind["lib_nom_pat_ind"][i] = self.ind["lib_nom_pat_ind"][i].replace("--", sep)
        return v

    def birth_name_particle(self, i):
        name = self.ind["lib_nom_pat_ind"][i]
        m = _PARTICLE.match(name)
        head, rest = name[: m.end()], name[m.end() :]
        if head.endswith("'"):
            v = self.pick(("apostrophe_dropped", "apostrophe_space"))
            head = head[:-1] + ("" if v == "apostrophe_dropped" else " ")
        else:
            v = self.pick(("glued", "hyphen"))
            head = head.rstrip().replace(" ", "" if v == "glued" else "-")
            head += "" if v == "glued" else "-"
        self.ind["lib_nom_pat_ind"][i] = head + rest
        return v

    def birth_name_hyphen_space(self, i):
        name = self.ind["lib_nom_pat_ind"][i]
        if "-" in name:
            v = self.pick(("hyphen_to_space", "hyphen_dropped"))
            self.ind["lib_nom_pat_ind"][i] = name.replace(
                "-", " " if v == "hyphen_to_space" else ""
            )
        else:
            v = self.pick(("space_to_hyphen", "space_dropped"))
            self.ind["lib_nom_pat_ind"][i] = name.replace(
                " ", "-" if v == "space_to_hyphen" else ""
            )
        return v

    def ligature(self, i):
        for column, v in (("lib_nom_pat_ind", "birth_name"), ("lib_pr1_ind", "first_name")):
            value = self.ind[column][i]
            if "OE" in value or "AE" in value:
                self.ind[column][i] = value.replace("OE", "Œ", 1).replace("AE", "Æ", 1)
                return v
        raise AssertionError("ligature drawn for a name without OE/AE")

    # -- first names -----------------------------------------------------------------
    def compound_first_name_altered(self, i):
        v = self.pick(("space", "glued", "first_part"), p=(0.6, 0.1, 0.3))
        first = self.ind["lib_pr1_ind"][i]
        self.ind["lib_pr1_ind"][i] = {
            "space": first.replace("-", " "),
            "glued": first.replace("-", ""),
            "first_part": first.split("-")[0],
        }[v]
        return v

    def first_names_merged(self, i):
        ind = self.ind
        ind["lib_pr1_ind"][i] = f"{ind['lib_pr1_ind'][i]} {ind['lib_pr2_ind'][i]}"
        v = self.pick(("second_emptied", "second_shifted"))
        if v == "second_shifted" and ind["lib_pr3_ind"][i] is not None:
            ind["lib_pr2_ind"][i], ind["lib_pr3_ind"][i] = ind["lib_pr3_ind"][i], None
        else:
            ind["lib_pr2_ind"][i] = ind["lib_pr3_ind"][i] = None
            v = "second_emptied"
        return v

    def first_names_swapped(self, i):
        ind = self.ind
        ind["lib_pr1_ind"][i], ind["lib_pr2_ind"][i] = ind["lib_pr2_ind"][i], ind["lib_pr1_ind"][i]
        return "first_second"

    def first_names_2_3_wrong(self, i):
        ind = self.ind
        if ind["lib_pr3_ind"][i] is not None and self.rng.random() < 0.5:
            ind["lib_pr2_ind"][i], ind["lib_pr3_ind"][i] = (
                ind["lib_pr3_ind"][i],
                ind["lib_pr2_ind"][i],
            )
            return "order"
        ind["lib_pr2_ind"][i] = self.other_first_name(i)
        return "other_name"

    def first_names_2_3_missing(self, i):
        self.ind["lib_pr2_ind"][i] = self.ind["lib_pr3_ind"][i] = None
        return "dropped"

    def usage_first_name(self, i):
        ind = self.ind
        sex = ind["cod_sex_etu"][i]
        usage_sex = sex if self.rng.random() < 0.5 else ("F" if sex == "M" else "M")
        ind["tem_pr_usage"][i] = "O"
        ind["lib_pr_eta_civ"][i] = ind["lib_pr1_ind"][i]
        ind["cod_sex_eta_civ"][i] = sex
        ind["lib_pr1_ind"][i] = self.other_first_name(i, usage_sex)
        ind["cod_sex_etu"][i] = usage_sex
        ind["cod_civ"][i] = "1" if usage_sex == "M" else "2"
        return "same_sex" if usage_sex == sex else "other_sex"

    # -- names -----------------------------------------------------------------------
    def typo(self, i):
        column, v = (
            ("lib_nom_pat_ind", "birth_name")
            if self.rng.random() < 0.6
            else ("lib_pr1_ind", "first_name")
        )
        self.ind[column][i] = _typo(self.rng, self.ind[column][i])
        return v

    def transliteration(self, i):
        order = [("lib_pr1_ind", "first_name"), ("lib_nom_pat_ind", "birth_name")]
        if self.rng.random() < 0.5:
            order.reverse()
        for column, v in order:
            out = _transliterate(self.rng, self.ind[column][i])
            if out is not None and fold(out) != fold(self.ind[column][i]):
                self.ind[column][i] = out
                return v
        self.ind["lib_pr1_ind"][i] = _typo(self.rng, self.ind["lib_pr1_ind"][i])
        return "first_name_respelt"

    def name_inverted(self, i):
        ind = self.ind
        ind["lib_nom_pat_ind"][i], ind["lib_pr1_ind"][i] = (
            ind["lib_pr1_ind"][i],
            ind["lib_nom_pat_ind"][i],
        )
        return "birth_first"

    def usage_name_as_birth_name(self, i):
        ind = self.ind
        birth, usage = ind["lib_nom_pat_ind"][i], self.clean.ind["lib_nom_usu_ind"][i]
        v = self.pick(("swapped", "both_usage", "usage_only"))
        ind["lib_nom_pat_ind"][i] = usage
        ind["lib_nom_usu_ind"][i] = {"swapped": birth, "both_usage": usage, "usage_only": None}[v]
        return v

    def usage_name_copy(self, i):
        self.ind["lib_nom_usu_ind"][i] = self.ind["lib_nom_pat_ind"][i]
        return "copy"

    def accents_case(self, i):
        ind = self.ind
        v = self.pick(("title_case", "lower_case", "accent_added"))
        for column in ("lib_nom_pat_ind", "lib_pr1_ind"):
            value = ind[column][i]
            ind[column][i] = {
                "title_case": value.title(),
                "lower_case": value.lower(),
                "accent_added": _add_accent(value, self.rng),
            }[v]
        return v

    def whitespace(self, i):
        v = self.pick(("trailing", "leading", "double"))
        column = "lib_nom_pat_ind" if self.rng.random() < 0.5 else "lib_pr1_ind"
        value = self.ind[column][i]
        if v == "double" and " " not in value:
            v = "trailing"
        self.ind[column][i] = {
            "trailing": value + " ",
            "leading": " " + value,
            "double": value.replace(" ", "  ", 1),
        }[v]
        return v

    def sex_wrong(self, i):
        ind = self.ind
        ind["cod_sex_etu"][i] = "F" if ind["cod_sex_etu"][i] == "M" else "M"
        v = self.pick(("sex_only", "sex_and_civility"))
        if v == "sex_and_civility":
            ind["cod_civ"][i] = "1" if ind["cod_sex_etu"][i] == "M" else "2"
        return v

    # -- birth date ------------------------------------------------------------------
    def _date(self, i) -> dt.date:
        return dt.date.fromisoformat(self.ind["date_nai_ind"][i])

    def _set_date(self, i, date: dt.date) -> None:
        self.ind["date_nai_ind"][i] = date.isoformat()

    def birth_year_wrong(self, i):
        v = self.pick(("one_off", "digit"), p=(0.8, 0.2))
        step = int(self.rng.choice((-1, 1))) * (1 if v == "one_off" else 10)
        self._set_date(i, _shift_date(self._date(i), step))
        return v

    def day_month_swapped(self, i):
        d = self._date(i)
        self._set_date(i, d.replace(month=d.day, day=d.month))
        return "swapped"

    def day_month_default(self, i):
        d = self._date(i)
        self._set_date(i, d.replace(month=1, day=1))
        return "first_of_january"

    def birth_day_wrong(self, i):
        d = self._date(i)
        for _ in range(20):
            shift = int(self.rng.choice((-3, -2, -1, 1, 2, 3)))
            day = d.day + shift
            try:
                self._set_date(i, d.replace(day=day))
                return "day"
            except ValueError:
                continue
        self._set_date(i, d.replace(day=15 if d.day != 15 else 16))
        return "day"

    def birth_date_estimated(self, i):
        d = self._date(i)
        v = self.pick(("first_of_january", "thirty_first_december"))
        placeholder = (
            d.replace(month=1, day=1) if v == "first_of_january" else d.replace(month=12, day=31)
        )
        self._set_date(i, placeholder)
        self.ind["tem_date_nai_rel"][i] = "N"
        return v

    # -- birthplace ------------------------------------------------------------------
    def commune_wrong(self, i):
        ind = self.ind
        code = self.clean.pop.birth_code[i]
        c = self.ref[code]
        same_dep = [o for o in self.by_dep[c.department] if o.code != code]
        options = ["other_commune", "other_label"] if same_dep else []
        if c.postal_code and c.postal_code != code:
            options.append("postal_code")
        if not options:
            options = ["postal_code"]
        v = options[int(self.rng.integers(len(options)))]
        other = same_dep[int(self.rng.integers(len(same_dep)))] if same_dep else c
        if v == "postal_code":
            ind["cod_com_nai_etu"][i] = c.postal_code or code[:2] + "000"
        elif v == "other_commune":
            ind["cod_com_nai_etu"][i] = other.code
        else:
            ind["cod_com_nai_etu"][i] = None
            ind["lib_vil_nai_etu"][i] = other.name
        return v

    def birthplace_missing(self, i):
        ind = self.ind
        if self.rng.random() < 0.1:
            ind["cod_typ_dep_pay_nai"][i] = ind["cod_dep_pay_nai"][i] = None
            return "origin_unknown"
        if self.clean.pop.born_abroad[i]:
            ind["cod_dep_pay_nai"][i] = None
            return "country_missing"
        ind["cod_com_nai_etu"][i] = ind["lib_vil_nai_etu"][i] = None
        return "commune_missing"

    def commune_country_confused(self, i):
        ind = self.ind
        if self.clean.pop.born_abroad[i]:
            dep = self.departments[int(self.rng.integers(len(self.departments)))]
            ind["cod_typ_dep_pay_nai"][i], ind["cod_dep_pay_nai"][i] = "D", "0" + dep
            return "abroad_as_france"
        ind["cod_typ_dep_pay_nai"][i], ind["cod_dep_pay_nai"][i] = "P", "100"
        ind["cod_com_nai_etu"][i] = None
        return "france_as_abroad"

    def city_label_variant(self, i):
        label = self.ind["lib_vil_nai_etu"][i]
        if re.search(r"\bSAINTE?-", label):
            self.ind["lib_vil_nai_etu"][i] = re.sub(
                r"\bSAINT(E?)-", lambda m: "STE " if m.group(1) else "ST ", label
            )
            return "saint_abbreviated"
        if "-" in label and self.rng.random() < 0.5:
            self.ind["lib_vil_nai_etu"][i] = label.replace("-", " ")
            return "hyphen_space"
        self.ind["lib_vil_nai_etu"][i] = label.title()
        return "title_case"

    # -- register side, duplicates (handled by the caller) ---------------------------
    def absent_from_sngi(self, i):
        return "no_nir"

    def sngi_duplicate(self, i):
        return "two_identities"

    def duplicate_person(self, i):
        return "original"


_FIRST = ("lib_pr1_ind", "lib_pr2_ind", "lib_pr3_ind")


def apply_errors(clean: CleanSource, seed: int, rates: dict[str, float] | None = None) -> Perturbed:
    """Give each person at most one kind and alter its INDIVIDU row accordingly.

    ``duplicate_person`` adds a second INDIVIDU row (new COD_IND and student number,
    same civil status) whose results copy the original's. The truth frame has one row
    per INDIVIDU row; :data:`KINDS` gives each kind's rate and source.
    """
    import pandas as pd

    rng = np.random.default_rng([seed, 1])
    kind, allocation = allocate(clean, rng, rates)
    ind = {k: v.copy() for k, v in clean.ind.items()}
    nir_state = assign_nir(clean, kind, np.random.default_rng([seed, 3]), ind)
    apply = _Applier(rng, clean, ind)
    n = len(clean)
    variant = np.full(n, None, dtype=object)
    for i in np.flatnonzero(kind != NONE):
        variant[i] = apply(kind[i], int(i))

    dup = np.flatnonzero(kind == "duplicate_person")
    new_ids = np.arange(len(dup)) + int(max(ind["cod_ind"])) + 1
    results, groups = list(clean.results), list(clean.groups)
    if len(dup):
        copy_of = dict(zip((int(ind["cod_ind"][i]) for i in dup), new_ids.tolist(), strict=True))
        for column, values in ind.items():
            ind[column] = np.concatenate([values, values[dup]])
        ind["cod_ind"][n:] = new_ids
        ind["cod_etu"][n:] = (31_000_000 + np.arange(len(dup))).astype(object)
        ind["cod_nne_ind"][n:] = [f"{v:09d}B" for v in rng.integers(0, 10**9, len(dup))]
        results += [(copy_of[r[0]], *r[1:]) for r in clean.results if r[0] in copy_of]

    pop = clean.pop
    person = np.concatenate([np.arange(n), dup])
    truth = pd.DataFrame(
        {
            "cod_ind": ind["cod_ind"].astype(np.int64),
            "person_id": person.astype(np.int64),
            "role": ["original"] * n + ["copy"] * len(dup),
            "kind": kind[person],
            "variant": variant[person],
            "wrong": [KINDS[k].wrong if k != NONE else False for k in kind[person]],
            "side": [KINDS[k].side if k != NONE else "source" for k in kind[person]],
            "in_register": kind[person] != "absent_from_sngi",
            "sngi_duplicate": kind[person] == "sngi_duplicate",
            "nir_state": nir_state[person],
            "graduate": clean.graduate[person],
            "true_birth_name": clean.ind["lib_nom_pat_ind"][person],
            "true_usage_name": clean.ind["lib_nom_usu_ind"][person],
            "true_first_name_1": clean.ind["lib_pr1_ind"][person],
            "true_first_name_2": clean.ind["lib_pr2_ind"][person],
            "true_first_name_3": clean.ind["lib_pr3_ind"][person],
            "true_sex": pop.sex[person],
            "true_birth_date": clean.ind["date_nai_ind"][person],
            "true_birth_code": pop.birth_code[person],
            "born_abroad": pop.born_abroad[person],
            "surname_p": pop.surname_p[person],
            "first_name_p": pop.first_1_p[person],
        }
    )
    return Perturbed(ind, results, groups, truth, allocation)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


@dataclass
class IndependentFiles:
    apogee: Path  # the Apogée database the extraction reads (errors, no truth)
    truth: Path  # the truth, in its own SQLite file
    mapping: Path  # the certification mapping CSV
    persons: int
    records: int
    seconds: float
    allocation: dict[str, tuple[int, int, int]]


def _connect_private(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    return sqlite3.connect(path)


def write_apogee(path: Path, ind: dict[str, np.ndarray], results, groups) -> None:
    """The Apogée tables (demo schema and reference rows) holding ``ind`` and results."""
    from cpf_deposit.demo.apogee import TABLE_COLUMNS, reference_rows
    from cpf_deposit.demo.build import apogee_ddl

    conn = _connect_private(path)
    try:
        for stmt in apogee_ddl("sqlite"):
            conn.execute(stmt)
        tables = {
            **reference_rows(),
            "individu": zip(*(ind[c].tolist() for c in TABLE_COLUMNS["individu"]), strict=True),
            "resultat_vdi": results,
            "grp_resultat_vdi": groups,
        }
        for table, rows in tables.items():
            cols = TABLE_COLUMNS[table]
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                rows,
            )
        conn.commit()
    finally:
        conn.close()


def write_truth(path: Path, truth) -> None:
    conn = _connect_private(path)
    try:
        truth.to_sql(TRUTH_TABLE, conn, index=False)
        conn.commit()
    finally:
        conn.close()


def read_truth(path: str | Path):
    """The truth frame written by :func:`write_independent`."""
    import pandas as pd

    with sqlite3.connect(path) as conn:
        truth = pd.read_sql_query(f"SELECT * FROM {TRUTH_TABLE}", conn)
    for column in ("wrong", "in_register", "sngi_duplicate", "graduate", "born_abroad"):
        truth[column] = truth[column].astype(bool)
    return truth


def write_independent(
    out_dir: str | Path, graduates: int, seed: int, rates: dict[str, float] | None = None
) -> IndependentFiles:
    """Clean population, this model's errors, and the three files under ``out_dir``."""
    from cpf_deposit.demo.apogee import write_mapping_csv

    started = time.perf_counter()
    out = Path(out_dir)
    clean = draw_clean(graduates, seed)
    perturbed = apply_errors(clean, seed, rates)
    write_apogee(out / APOGEE_FILE, perturbed.ind, perturbed.results, perturbed.groups)
    write_truth(out / TRUTH_FILE, perturbed.truth)
    write_mapping_csv(out / MAP_FILE)
    return IndependentFiles(
        out / APOGEE_FILE,
        out / TRUTH_FILE,
        out / MAP_FILE,
        len(clean),
        len(perturbed.truth),
        time.perf_counter() - started,
        perturbed.allocation,
    )

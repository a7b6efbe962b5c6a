"""The identity gate's rules: what the CDC would reject, caught before deposit.

Each rule has an id, a severity (``BLOCK``: the passage is quarantined and not sent;
``WARN``: it is sent and listed; ``NOTE``: a policy note, such as late transmission,
that changes no verdict), a French message for the scolarité office and, when
one can be derived, a suggested fix. A rule is a vectorised function of the prepared
frame (:func:`cpf_deposit.quality.prepare.prepare`) that returns, per row, whether it
fires; it reads only the columns it declares, because the Great Expectations suite
hands it exactly those. Fixes are computed only for the rows that fired.

``targets`` name the demo's injected error types (:mod:`cpf_deposit.demo.errors`) a
rule is meant to catch; the quality report scores each rule against them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cpf_deposit.model import FIELD_BY_NAME, FORBIDDEN_CHARS, SEXE
from cpf_deposit.quality.names import cdc_key, first_name_key, foreign_characters, map_unique
from cpf_deposit.quality.reference import (
    ABSENT,
    FROM_50,
    FROM_100,
    FROM_500,
    NO_RANK,
    UNDER_50,
    geography,
    surnames,
)

BLOCK, WARN, OK = "BLOCK", "WARN", "OK"
# A policy note (late transmission): listed beside the verdict, never part of it. It is
# not about the holder's identity, so it neither holds a passage back nor makes the
# gate "foresee" a CDC rejection, and it is not work for the scolarité office.
NOTE = "NOTE"
PASSPORT_START = np.datetime64("2021-07-01", "s")
DEADLINE_DAYS = 92  # three months, the legal transmission deadline

Frame = pd.DataFrame
Mask = pd.Series


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: str
    title: str  # English, for docs and Data Docs
    message: str  # French, for the scolarité office
    columns: tuple[str, ...]
    fires: Callable[[Frame], Mask] = field(repr=False)
    fix: Callable[[Frame], pd.Series] | None = field(default=None, repr=False)
    targets: frozenset[str] = frozenset()

    def evaluate(self, frame: Frame) -> Mask:
        """Boolean Series: True where the rule fires (NA counts as not firing)."""
        out = self.fires(frame[list(self.columns)])
        return _b(out)

    def fixes(self, frame: Frame) -> pd.Series:
        """Suggested fix (French) for each row of ``frame`` (rows where it fired)."""
        if self.fix is None or frame.empty:
            return pd.Series([None] * len(frame), index=frame.index, dtype=object)
        return self.fix(frame).astype(object).where(lambda s: s.notna(), None)


def _b(s) -> Mask:
    if isinstance(s, pd.Series):
        if s.dtype == bool:
            return s
        return s.fillna(False).astype(bool)
    return pd.Series(s, dtype=bool)


def _has(s: pd.Series) -> Mask:
    return _b(s.notna() & (s.astype("str").str.strip() != ""))


def _txt(s: pd.Series) -> pd.Series:
    return s.astype("str").fillna("")


# --------------------------------------------------------------------------------------
# 1. Birth name and first name inverted
# --------------------------------------------------------------------------------------


def _declared(frame: Frame, prefix: str, what: str, other: bool = False) -> pd.Series:
    """Column ``{prefix}_{what}_{m|f}`` of the declared sex (or the other one)."""
    male = frame["q_sex"].eq("M").fillna(False).to_numpy()
    if other:
        male = ~male
    m = frame[f"{prefix}_{what}_m"].to_numpy()
    f = frame[f"{prefix}_{what}_f"].to_numpy()
    return pd.Series(np.where(male, m, f), index=frame.index)


def _valid_sex(frame: Frame) -> Mask:
    return _b(frame["q_sex"].isin(list(SEXE)))


def _inverted(frame: Frame) -> Mask:
    bn_first = np.maximum(frame["q_bnf_bucket_m"], frame["q_bnf_bucket_f"])
    bn_first_declared = _declared(frame, "q_bnf", "bucket").where(_valid_sex(frame), bn_first)
    fn_first = np.maximum(frame["q_fn1_bucket_m"], frame["q_fn1_bucket_f"])
    fn_surname = frame["q_fn1_srank"] < NO_RANK
    return (bn_first_declared >= FROM_100) & (fn_first == ABSENT) & fn_surname


def _inverted_weak(frame: Frame) -> Mask:
    """The birth name is a frequent first name of the declared sex and no common
    surname, while the first name is a surname more common than the birth name."""
    bn_first = _declared(frame, "q_bnf", "bucket")
    rare_surname = frame["q_bn_srank"] >= surnames().common_cut
    fn_surname = frame["q_fn1_srank"] < np.minimum(frame["q_bn_srank"], 20_000)
    return (
        _valid_sex(frame) & (bn_first == FROM_500) & rare_surname & fn_surname & ~_inverted(frame)
    )


def _swap_fix(frame: Frame) -> pd.Series:
    return (
        "nom de naissance : "
        + _txt(frame["first_name_1"])
        + " ; prénom 1 : "
        + _txt(frame["birth_name"])
    )


# --------------------------------------------------------------------------------------
# 2. Sex and first name
# --------------------------------------------------------------------------------------


def _sex_exclusive(frame: Frame) -> Mask:
    mine = _declared(frame, "q_fn1", "bucket")
    other = _declared(frame, "q_fn1", "bucket", other=True)
    return _valid_sex(frame) & (mine == ABSENT) & (other == FROM_500)


def _sex_ambiguous(frame: Frame) -> Mask:
    mine = _declared(frame, "q_fn1", "bucket")
    other = _declared(frame, "q_fn1", "bucket", other=True)
    mine_rank = _declared(frame, "q_fn1", "rank")
    other_rank = _declared(frame, "q_fn1", "rank", other=True)
    weak = (mine >= UNDER_50) & (mine <= FROM_50) & (other == FROM_500)
    minority = (mine >= FROM_100) & (other >= FROM_100) & (mine_rank > other_rank)
    return _valid_sex(frame) & (weak | minority)


def _other_sex_fix(frame: Frame) -> pd.Series:
    other = frame["q_sex"].map({"M": "F", "F": "M"})
    return "sexe : " + _txt(other) + " (à vérifier sur l'acte de naissance)"


# --------------------------------------------------------------------------------------
# 3-4. First names: several in prenom1, hyphens of compounds; double birth names
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spaced:
    kind: str  # "" (no space), "compound" (known hyphenated form), "several", "unknown"
    parts: tuple[str, ...]


def _spaced_kind(key: str | None) -> _Spaced:
    from cpf_deposit.quality.prepare import first_name_lookup

    if key is None or " " not in key:
        return _Spaced("", ())
    parts = tuple(p for p in key.split(" ") if p)
    joined = first_name_key(key)
    stats = first_name_lookup(joined) if "-" not in key else None
    if stats is not None and joined is not None:
        from cpf_deposit.quality.reference import first_names

        exact = first_names().get(joined)
        if exact is not None and exact.best_bucket >= FROM_100:
            return _Spaced("compound", parts)
    known = all((s := first_name_lookup(p)) is not None and s.best_bucket >= FROM_50 for p in parts)
    return _Spaced("several" if known else "unknown", parts)


def _spaced(frame: Frame) -> pd.Series:
    return map_unique(frame["q_fn1"], _spaced_kind, dtype="object")


def _kind_is(kinds: pd.Series, kind: str) -> Mask:
    return pd.Series([k is not None and k.kind == kind for k in kinds], index=kinds.index)


def _several_first_names(frame: Frame) -> Mask:
    kinds = _spaced(frame)
    several = _kind_is(kinds, "several")
    # A known compound typed with a space, and no second first name: most likely the
    # first two first names merged (JEAN PIERRE for Jean, Pierre).
    merged_compound = _kind_is(kinds, "compound") & ~_has(frame["first_name_2"])
    return several | merged_compound


def _first_name_spaces_unknown(frame: Frame) -> Mask:
    return _kind_is(_spaced(frame), "unknown")


def _split_fix(frame: Frame) -> pd.Series:
    out = []
    for fn1, fn2, fn3 in zip(frame["q_fn1"], frame["q_fn2"], frame["q_fn3"], strict=True):
        parts = [p for p in str(fn1).split(" ") if p]
        rest = [v for v in (fn2, fn3) if isinstance(v, str) and v]
        names = parts + rest
        text = f"prénom 1 : {names[0]}"
        if len(names) > 1:
            text += f" ; prénom 2 : {names[1]}"
        if len(names) > 2:
            text += f" ; prénom 3 : {' '.join(names[2:])}"
        if len(parts) == 2 and not rest:
            text += f" (ou prénom composé {parts[0]}-{parts[1]} si l'état civil l'écrit ainsi)"
        out.append(text)
    return pd.Series(out, index=frame.index, dtype=object)


def _compound_without_hyphen(frame: Frame) -> Mask:
    return _kind_is(_spaced(frame), "compound") & _has(frame["first_name_2"])


def _hyphen_fix(frame: Frame) -> pd.Series:
    return "prénom 1 : " + frame["q_fn1"].str.replace(" ", "-", regex=False)


def _unusual_compound_kind(key: str | None) -> bool:
    from cpf_deposit.quality.prepare import first_name_lookup
    from cpf_deposit.quality.reference import first_names

    if key is None or "-" not in key or "--" in key or " " in key:
        return False
    if first_names().get(key) is not None:
        return False
    parts = [p for p in key.split("-") if p]
    return len(parts) >= 2 and all(
        (s := first_name_lookup(p)) is not None and s.best_bucket >= FROM_100 for p in parts
    )


def _unusual_compound(frame: Frame) -> Mask:
    return _b(map_unique(frame["q_fn1"], _unusual_compound_kind, dtype="object"))


def _unusual_compound_fix(frame: Frame) -> pd.Series:
    parts = frame["q_fn1"].str.split("-", n=1)
    return (
        "vérifier l'acte : prénom composé "
        + frame["q_fn1"]
        + " ou deux prénoms (prénom 1 : "
        + parts.str[0]
        + " ; prénom 2 : "
        + parts.str[1]
        + ")"
    )


def _double_hyphen_out_of_period(frame: Frame) -> Mask:
    year = frame["q_birth_year"]
    dbl = _b(frame["q_bn"].str.contains("--", regex=False))
    return dbl & _b((year < 2004) | (year > 2011))


def double_name_split(key: str | None) -> tuple[str, str] | None:
    """(first, second) surnames of an unlisted birth name made of two listed surnames
    joined by a hyphen or a space (LE ROUX-LANGLOIS), else None."""
    if key is None or "--" in key:
        return None
    ranks = surnames().rank
    if key in ranks:
        return None
    for m in sorted(re.finditer(r"[- ]", key), key=lambda m: m.group() != "-"):
        left, right = key[: m.start()], key[m.end() :]
        if len(left) > 2 and len(right) > 2 and left in ranks and right in ranks:
            return left, right
    return None


def _double_name_kind(key: str | None) -> bool:
    return double_name_split(key) is not None


def _double_name_2005_2010(frame: Frame) -> Mask:
    year = frame["q_birth_year"]
    window = _b((year >= 2005) & (year <= 2010))
    return window & _b(map_unique(frame["q_bn"], _double_name_kind, dtype="object"))


def _double_name_fix(frame: Frame) -> pd.Series:
    def one(key):
        split = double_name_split(key)
        return None if split is None else f"{split[0]}--{split[1]}"

    double = map_unique(frame["q_bn"], one, dtype="object").astype("str")
    return "vérifier l'acte : nom double écrit " + double + " (naissances 2005-2010) ?"


def _double_hyphen_fix(frame: Frame) -> pd.Series:
    return "nom de naissance : " + frame["q_bn"].str.replace("--", " ", regex=False)


# --------------------------------------------------------------------------------------
# 5. Characters in names
# --------------------------------------------------------------------------------------

NAME_COLUMNS = ("birth_name", "usage_name", "first_name_1", "first_name_2", "first_name_3")
_LABELS = {
    "birth_name": "nom de naissance",
    "usage_name": "nom d'usage",
    "first_name_1": "prénom 1",
    "first_name_2": "prénom 2",
    "first_name_3": "prénom 3",
}


def _foreign_in(s: pd.Series) -> Mask:
    return _b(map_unique(s, lambda v: bool(foreign_characters(v)), dtype="object"))


def _bad_characters(frame: Frame) -> Mask:
    out = pd.Series(False, index=frame.index)
    for c in NAME_COLUMNS:
        out |= _foreign_in(frame[c])
    return out


def _bad_characters_fix(frame: Frame) -> pd.Series:
    out = []
    for _, row in frame[list(NAME_COLUMNS)].iterrows():
        parts = []
        for c in NAME_COLUMNS:
            v = row[c]
            bad = foreign_characters(v) if isinstance(v, str) else ""
            if bad:
                parts.append(f"{_LABELS[c]} : retirer ou transcrire « {bad} »")
        out.append(" ; ".join(parts) or None)
    return pd.Series(out, index=frame.index, dtype=object)


# Any whitespace but a plain space (TAB, LF, CR, no-break space) counts too: the XSD
# and the CDC accept it, but it is never part of a civil-status name.
_SPACING = re.compile(r"^\s|\s$|\s{2}|\s-|-\s|\s'|'\s|[^\S ]")


def _spacing(frame: Frame) -> Mask:
    out = pd.Series(False, index=frame.index)
    for c in NAME_COLUMNS:
        out |= _b(map_unique(frame[c], lambda v: bool(_SPACING.search(v)), dtype="object"))
    return out


def _clean_spaces(v: str) -> str:
    v = re.sub(r"\s+", " ", v.strip())
    return re.sub(r"\s*([-'])\s*", r"\1", v)


def _column_fixes(frame: Frame, columns, test, fix) -> pd.Series:
    out = []
    for _, row in frame[list(columns)].iterrows():
        parts = []
        for c in columns:
            v = row[c]
            if isinstance(v, str) and test(v):
                parts.append(f"{_LABELS[c]} : {fix(v)}")
        out.append(" ; ".join(parts) or None)
    return pd.Series(out, index=frame.index, dtype=object)


def _spacing_fix(frame: Frame) -> pd.Series:
    return _column_fixes(frame, NAME_COLUMNS, lambda v: bool(_SPACING.search(v)), _clean_spaces)


_TYPOGRAPHIC = "’‘`´ʼʻ′‐‑‒–—―−ŒœÆæ"
_TYPO_RE = "[" + re.escape(_TYPOGRAPHIC) + "]"


def _typography(frame: Frame) -> Mask:
    out = pd.Series(False, index=frame.index)
    for c in NAME_COLUMNS:
        out |= _b(frame[c].str.contains(_TYPO_RE, regex=True))
    return out


def _typography_fix(frame: Frame) -> pd.Series:
    return _column_fixes(
        frame, NAME_COLUMNS, lambda v: bool(re.search(_TYPO_RE, v)), lambda v: cdc_key(v)
    )


def _punctuation_variant_of(key: str | None) -> str | None:
    """The listed spelling of a surname written with other punctuation, when the
    written one is unlisted or at least 20 times rarer (LE-GOFF for LE GOFF)."""
    from cpf_deposit.quality.names import loose_key

    if key is None or len(key) < 4:
        return None
    s = surnames()
    best = s.by_loose.get(loose_key(key) or "")
    if best is None or best == key:
        return None
    mine = s.rank.get(key, NO_RANK)
    if mine == NO_RANK:
        return best
    theirs = s.rank[best]
    return best if theirs < s.common_cut and mine > 20 * theirs + 1000 else None


def _punctuation_variant(frame: Frame) -> Mask:
    return _b(map_unique(frame["q_bn"], _punctuation_variant_of, dtype="object").notna())


def _punctuation_variant_fix(frame: Frame) -> pd.Series:
    best = map_unique(frame["q_bn"], _punctuation_variant_of, dtype="object")
    return "nom de naissance : " + best.astype("str") + " (graphie usuelle ; vérifier l'acte)"


# --------------------------------------------------------------------------------------
# 6. Usage name sent as birth name
# --------------------------------------------------------------------------------------


def _usage_as_birth(frame: Frame) -> Mask:
    same = _b(frame["q_un"].notna() & (frame["q_un"] == frame["q_bn"]))
    no_usage = ~_has(frame["usage_name"])
    mature_woman = _b((frame["q_sex"] == "F") & (frame["q_age"] >= 40))
    return same | (no_usage & mature_woman)


# --------------------------------------------------------------------------------------
# 7. Birth date and first names 2-3
# --------------------------------------------------------------------------------------


def _estimated(frame: Frame) -> Mask:
    return _b(frame["birth_date_is_estimated"].str.strip().str.upper() == "Y")


def _default_date(frame: Frame) -> Mask:
    b = frame["q_birth"]
    md = b.dt.month * 100 + b.dt.day
    default = _b(md.isin([101, 1231]))
    abroad = _b(frame["born_in_france"] == "N")
    return default & abroad & ~_estimated(frame)


def _gap_in_first_names(frame: Frame) -> Mask:
    return ~_has(frame["first_name_2"]) & _has(frame["first_name_3"])


def _gap_fix(frame: Frame) -> pd.Series:
    return "prénom 2 : " + _txt(frame["first_name_3"]) + " ; prénom 3 : (vide)"


# --------------------------------------------------------------------------------------
# 8. Birthplace
# --------------------------------------------------------------------------------------

_INSEE = r"^(?:[0-9]{2}|2[AB])[0-9]{3}$"


def _commune_code(frame: Frame) -> pd.Series:
    return frame["birth_commune_insee"].str.strip().str.upper()


def _in_france(frame: Frame) -> Mask:
    return _b(frame["born_in_france"] == "Y")


def _commune_unknown(frame: Frame) -> Mask:
    code = _commune_code(frame)
    known = geography().commune_department
    present = _b(code.notna() & (code != ""))
    return present & _in_france(frame) & ~_b(code.map(known).notna())


def _commune_unknown_fix(frame: Frame) -> pd.Series:
    geo = geography()
    out = []
    for code, dep in zip(_commune_code(frame), frame["birth_department_code"], strict=True):
        options = geo.postal_to_communes.get(code, ()) if isinstance(code, str) else ()
        deps = _source_departments(dep)
        if deps:
            options = tuple(o for o in options if geo.commune_department.get(o) in deps)
        if len(options) == 1:
            out.append(f"code postal saisi à la place du code INSEE : code INSEE {options[0]} ?")
        elif options:
            out.append(
                "code postal saisi à la place du code INSEE : " + ", ".join(options[:5]) + " ?"
            )
        else:
            out.append("saisir le code INSEE de la commune de naissance")
    return pd.Series(out, index=frame.index, dtype=object)


def _source_departments(code) -> tuple[str, ...]:
    from cpf_deposit.sources.birthplace import insee_departments

    return insee_departments(code) if isinstance(code, str) and code.strip() else ()


def _department_mismatch(frame: Frame) -> Mask:
    geo = geography().commune_department
    code = _commune_code(frame)
    commune_dep = code.map(geo)
    pairs = pd.DataFrame({"c": commune_dep, "d": frame["birth_department_code"]})
    ok = _b(pairs.notna().all(axis=1))
    sub = pairs[ok]
    out = pd.Series(False, index=frame.index)
    if len(sub):
        uniq = sub.drop_duplicates()
        uniq = uniq.assign(bad=[c not in _source_departments(d) for c, d in uniq.to_numpy()])
        merged = sub.merge(uniq, on=["c", "d"], how="left")
        out.loc[sub.index] = merged["bad"].to_numpy(dtype=bool)
    return out & _in_france(frame)


def _country_missing(frame: Frame) -> Mask:
    abroad = _b(frame["born_in_france"] == "N")
    code = frame["birth_country_code"].str.strip()
    shaped = _b(code.str.fullmatch(r"[0-9]{3}")) & _b(code != "100")
    return abroad & ~shaped


def _country_unknown(frame: Frame) -> Mask:
    abroad = _b(frame["born_in_france"] == "N")
    code = frame["birth_country_code"].str.strip()
    shaped = _b(code.str.fullmatch(r"[0-9]{3}")) & _b(code != "100")
    countries = dict.fromkeys(geography().countries, True)
    known = _b(("99" + code).map(countries).notna())
    return abroad & shaped & ~known


def _birthplace_missing(frame: Frame) -> Mask:
    unknown_origin = ~_b(frame["born_in_france"].isin(["Y", "N"]))
    france_nothing = (
        _in_france(frame) & ~_has(frame["birth_commune_insee"]) & ~_has(frame["birth_city_label"])
    )
    return unknown_origin | france_nothing


# --------------------------------------------------------------------------------------
# 9. Dates and ages
# --------------------------------------------------------------------------------------


def _age_implausible(frame: Frame) -> Mask:
    age = frame["q_age"]
    return _b((age < 15) | (age > 85))


def _birth_year_range(frame: Frame) -> Mask:
    year = frame["q_birth_year"]
    today_year = frame["q_today"].dt.year
    return _b((year < 1900) | (year > today_year))


def _award_before_passport(frame: Frame) -> Mask:
    return _b(frame["q_award"] < PASSPORT_START)


def _award_future(frame: Frame) -> Mask:
    return _b(frame["q_award"] > frame["q_today"])


def _award_late(frame: Frame) -> Mask:
    late = frame["q_today"] - pd.to_timedelta(DEADLINE_DAYS, unit="D")
    return _b((frame["q_award"] < late) & (frame["q_award"] >= PASSPORT_START))


def _award_missing(frame: Frame) -> Mask:
    return _b(frame["q_award"].isna())


# --------------------------------------------------------------------------------------
# 10. Certification
# --------------------------------------------------------------------------------------

_CODE_SHAPE = r"(?:RNCP|RS)[0-9]{1,10}"


def _cert_missing(frame: Frame) -> Mask:
    return ~_has(frame["q_cert_code"]) | ~_has(frame["q_cert_type"])


def _cert_type_mismatch(frame: Frame) -> Mask:
    ctype = frame["q_cert_type"]
    code = frame["q_cert_code"].str.upper()
    present = ~_cert_missing(frame)
    bad_type = ~_b(ctype.isin(["RNCP", "RS"]))
    other_prefix = _b(
        ((ctype == "RS") & code.str.startswith("RSRNCP"))
        | ((ctype == "RNCP") & code.str.startswith("RNCPRS"))
    )
    return present & (bad_type | other_prefix)


def _cert_shape(frame: Frame) -> Mask:
    present = ~_cert_missing(frame) & ~_cert_type_mismatch(frame)
    return present & ~_b(frame["q_cert_code"].str.fullmatch(_CODE_SHAPE))


def _cert_shape_fix(frame: Frame) -> pd.Series:
    digits = frame["q_cert_code"].str.replace(r"[^0-9]", "", regex=True)
    return "code : " + _txt(frame["q_cert_type"]) + _txt(digits) + " ?"


def _cert_type_fix(frame: Frame) -> pd.Series:
    code = frame["q_cert_code"].str.upper().str.replace(r"^(RNCP|RS)(?=RNCP|RS)", "", regex=True)
    return "type : " + _txt(code.str.extract(r"^(RNCP|RS)", expand=False)) + " ; code : " + code


def _cert_unmapped(frame: Frame) -> Mask:
    """No certification, and no bad line of the map to blame (R10D says that one)."""
    return _cert_missing(frame) & ~_has(frame["q_cert_map_line"])


def _cert_map_line(frame: Frame) -> Mask:
    return _cert_missing(frame) & _has(frame["q_cert_map_line"])


def _cert_map_line_fix(frame: Frame) -> pd.Series:
    return "corriger la table de correspondance : " + _txt(frame["q_cert_map_line"])


# --------------------------------------------------------------------------------------
# 11. Duplicates
# --------------------------------------------------------------------------------------


def _identity_group(frame: Frame) -> np.ndarray:
    """Group number of the civil identity (birth name, first name, sex, birth date)."""
    cols = frame[["q_bn", "q_fn1", "q_sex", "q_birth"]]
    return cols.groupby(list(cols.columns), dropna=False, sort=False).ngroup().to_numpy()


def _duplicate_award(frame: Frame) -> Mask:
    """A second award of one certification to one person (same source id or same civil
    identity): :func:`~cpf_deposit.quality.prepare.twin_keys` names the passage kept."""
    return _has(frame["q_twin_key"])


def _duplicate_fix(frame: Frame) -> pd.Series:
    return (
        "même personne et même certification que le passage de clé source "
        + _txt(frame["q_twin_key"])
        + ", qui est transmis : fusionner les dossiers à la source"
    )


def _two_ids(frame: Frame) -> Mask:
    complete = (
        _has(frame["q_bn"])
        & _has(frame["q_fn1"])
        & _has(frame["q_sex"])
        & _b(frame["q_birth"].notna())
        & _has(frame["source_person_id"])
    )
    identity = pd.Series(_identity_group(frame), index=frame.index)
    sub = pd.DataFrame({"i": identity[complete], "p": frame["source_person_id"][complete]})
    ids = sub.groupby("i")["p"].transform("nunique")
    out = pd.Series(False, index=frame.index)
    out.loc[ids.index] = (ids > 1).to_numpy()
    return out


def _two_ids_fix(frame: Frame) -> pd.Series:
    return "fusionner les dossiers (identifiant source " + _txt(frame["source_person_id"]) + ")"


# --------------------------------------------------------------------------------------
# 12. What the XSD cannot hold (facets from cpf_deposit.model.FIELDS)
# --------------------------------------------------------------------------------------

# Canonical text column -> Passage field whose facets apply (the mapping copies them).
XSD_TEXT = {
    "birth_name": "birth_name",
    "usage_name": "usage_name",
    "first_name_1": "first_name_1",
    "first_name_2": "first_name_2",
    "first_name_3": "first_name_3",
    "birth_city_label": "birth_city_label",
    "birth_country_label": "birth_country_label",
}
XSD_REQUIRED = ("birth_name", "first_name_1")


def _xsd_problems(frame: Frame) -> pd.DataFrame:
    """One boolean column per (field, problem)."""
    cols = {}
    forbidden = FORBIDDEN_CHARS.pattern
    for column, name in XSD_TEXT.items():
        f = FIELD_BY_NAME[name]
        s = frame[column]
        present = s.notna()
        n = s.str.len()
        cols[f"{column}:too_long"] = _b(present & (n > f.max_len))
        cols[f"{column}:forbidden_char"] = _b(present & s.str.contains(forbidden, regex=True))
        cols[f"{column}:empty"] = _b(present & (n < f.min_len))
    for column in XSD_REQUIRED:
        cols[f"{column}:missing"] = ~_has(frame[column])
    cols["sex:not_allowed"] = ~_valid_sex(frame)
    year = frame["q_birth_year"]
    birth = FIELD_BY_NAME["birth_year"]
    cols["birth_date:missing"] = _b(year.isna())
    cols["birth_date:out_of_range"] = _b((year < birth.low) | (year > birth.high))
    return pd.DataFrame(cols, index=frame.index)


def _xsd(frame: Frame) -> Mask:
    return _xsd_problems(frame).any(axis=1)


_XSD_TEXT_FR = {
    "too_long": "trop long pour le flux (jamais tronqué) : à abréger selon l'état civil",
    "forbidden_char": "caractère de contrôle interdit en XML : à retirer",
    "empty": "vide : à renseigner ou à laisser absent",
    "missing": "absent : obligatoire",
    "not_allowed": "absent ou différent de M/F : à renseigner",
    "out_of_range": "année hors de l'intervalle 1900-2099",
}


def _xsd_fix(frame: Frame) -> pd.Series:
    probs = _xsd_problems(frame)
    out = []
    for _, row in probs.iterrows():
        parts = []
        for key, bad in row.items():
            if bad:
                column, code = str(key).split(":")
                label = {**_LABELS, "sex": "sexe", "birth_date": "date de naissance"}.get(
                    column, column
                )
                maximum = FIELD_BY_NAME.get(XSD_TEXT.get(column, ""), None)
                extra = f" ({maximum.max_len} caractères au plus)" if code == "too_long" else ""
                parts.append(f"{label} : {_XSD_TEXT_FR[code]}{extra}")
        out.append(" ; ".join(parts) or None)
    return pd.Series(out, index=frame.index, dtype=object)


# --------------------------------------------------------------------------------------
# 13. The NIR cross-check (facts derived by the extraction; the NIR itself never here)
# --------------------------------------------------------------------------------------

_NIR_COLUMNS = (
    "nir_status",
    "nir_sex",
    "nir_birth_year",
    "nir_birth_month",
    "nir_birth_department",
    "nir_birth_commune",
)
_NIR_DECLARED = ("q_sex", "q_birth_year", "q_birth_month", "q_birth_dep", "q_birth_place")
# Île-de-France before 1968: Seine (75) and Seine-et-Oise (78) covered what are now
# 75, 78, 91, 92, 93, 94 and 95; NIRs of earlier births keep the old département.
_IDF_1968 = frozenset({"75", "78", "91", "92", "93", "94", "95"})
# NIRs of births in Algeria before 1962 (91-94) and, as far as we know, in the former
# protectorates (95, 96) use département-like codes: a declared birth abroad is then no
# certain disagreement (to check on real data).
_OLD_OVERSEAS = frozenset({"91", "92", "93", "94", "95", "96"})
_ARRONDISSEMENTS = {"75056": ("751", 1, 20), "69123": ("6938", 1, 9), "13055": ("132", 1, 16)}
# A NIR born this many years from the declared birth year is someone else's (a parent's
# number typed from an old attestation), not a wrong civil status: it is not compared.
NIR_OTHER_PERSON_YEARS = 15


def _nir_valid(frame: Frame) -> Mask:
    return _b(frame["nir_status"] == "valid")


def _nir_other_person(frame: Frame) -> Mask:
    gap = (frame["q_birth_year"] - frame["nir_birth_year"]).abs()
    return _nir_valid(frame) & _b(gap >= NIR_OTHER_PERSON_YEARS)


def _same_city(a: str, b: str) -> bool:
    """A city code (Paris, Lyon, Marseille) and one of its arrondissements."""
    for city, arr in ((a, b), (b, a)):
        spec = _ARRONDISSEMENTS.get(city)
        if spec is not None and arr.startswith(spec[0]):
            number = arr[len(spec[0]) :]
            return number.isdigit() and spec[1] <= int(number) <= spec[2]
    return False


def _commune_postal_codes() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for postal, codes in geography().postal_to_communes.items():
        for code in codes:
            out.setdefault(code, set()).add(postal)
    return out


def _nir_place_verdict(
    nir_dep: str, nir_place: str, old: bool, dep: str, place: str | None, postals: dict
) -> str:
    """How the declared birthplace stands against the NIR's: "" (agrees, or cannot be
    compared), "block" (disagrees) or "warn" (differs, perhaps for a historical reason:
    a commune merged since, sharing its postal code; a country code changed; a birth in
    Algeria before 1962). ``old``: the NIR's birth year is before 1968."""
    if nir_dep == "99":
        if dep != "99":
            return "block"  # the NIR says born abroad
        return "" if place is None or place == nir_place else "warn"
    if dep == "99":  # declared abroad, the NIR says born in France
        historical = (old and nir_dep in _OLD_OVERSEAS) or nir_dep.startswith("98")
        return "warn" if historical else "block"
    corsica = {nir_dep, dep} <= {"20", "2A", "2B"} and "20" in {nir_dep, dep}
    paris_region = old and nir_dep in ("75", "78") and dep in _IDF_1968
    overseas = dep in ("97", "98") and nir_dep.startswith(dep)  # a source coding 097
    if nir_dep != dep and not corsica and not paris_region and not overseas:
        return "block"
    if place is None or place == nir_place or (paris_region and nir_dep != dep):
        return ""
    if corsica and place[2:] == nir_place[2:] and {place[:2], nir_place[:2]} & {"20"}:
        return ""
    if _same_city(place, nir_place):
        return ""
    return "warn" if postals.get(place, set()) & postals.get(nir_place, set()) else "block"


def _nir_places(frame: Frame) -> pd.Series:
    """:func:`_nir_place_verdict` per row (rows that agree at once are not looked at)."""
    out = pd.Series("", index=frame.index, dtype=object)
    nir_dep, nir_place = frame["nir_birth_department"], frame["nir_birth_commune"]
    dep, place = frame["q_birth_dep"], frame["q_birth_place"]
    agree = _b((nir_dep == dep) & ((nir_place == place) | place.isna()))
    todo = _nir_valid(frame) & _has(nir_dep) & _has(nir_place) & _has(dep) & ~agree
    if todo.any():
        keys = list(
            zip(
                nir_dep[todo].tolist(),
                nir_place[todo].tolist(),
                _b(frame["nir_birth_year"] < 1968)[todo].tolist(),
                dep[todo].tolist(),
                [None if pd.isna(p) else p for p in place[todo].tolist()],
                strict=True,
            )
        )
        postals = _commune_postal_codes()
        verdicts = {k: _nir_place_verdict(*k, postals) for k in dict.fromkeys(keys)}
        out.loc[todo] = [verdicts[k] for k in keys]
    return out


def _nir_differences(frame: Frame) -> pd.DataFrame:
    """Per row of a valid NIR: which declared facts disagree with it (sex, year, month,
    birthplace), and whether the birthplace only differs (see _nir_place_verdict). A
    NIR that is someone else's is not compared."""
    valid = _nir_valid(frame) & ~_nir_other_person(frame)
    sex = frame["q_sex"]
    nir_month = pd.to_numeric(frame["nir_birth_month"], errors="coerce").astype("Int64")
    places = _nir_places(frame)
    return pd.DataFrame(
        {
            "sex": valid & _valid_sex(frame) & _has(frame["nir_sex"]) & _b(sex != frame["nir_sex"]),
            "year": valid & _b(frame["q_birth_year"] != frame["nir_birth_year"]),
            "month": valid & _b(frame["q_birth_month"] != nir_month),
            "place": valid & _b(places == "block"),
            "place_warn": valid & _b(places == "warn"),
        },
        index=frame.index,
    )


def _nir_disagrees(frame: Frame) -> Mask:
    """Sex or birth year: the SNGI's first matching stage compares exactly these (with
    the names), so the CDC will not find the holder."""
    d = _nir_differences(frame)
    return d["sex"] | d["year"]


def _nir_disagrees_later_stage(frame: Frame) -> Mask:
    """Month or birthplace only: the SNGI compares them only to tell homonyms apart
    (stages 2 and 3), so most such passages are accepted; they are sent and listed."""
    d = _nir_differences(frame)
    return (d["month"] | d["place"]) & ~(d["sex"] | d["year"])


def _nir_place_differs(frame: Frame) -> Mask:
    d = _nir_differences(frame)
    return d["place_warn"] & ~(d["sex"] | d["year"] | d["month"] | d["place"])


def _nir_unusable(frame: Frame) -> Mask:
    return _b(frame["nir_status"].isin(["invalid_key", "malformed"])) | _nir_other_person(frame)


_NIR_GAPS = {"sex": "sexe", "year": "année", "month": "mois", "place": "lieu de naissance"}


def _nir_says(row: pd.Series, commune: bool) -> str:
    """What the NIR says of the holder, in French: sex, month/year, département
    (the commune or country code when ``commune``); never the NIR."""
    woman = row["nir_sex"] == "F"
    born = "née" if woman else "né"
    month = row["nir_birth_month"]
    when = f"{month}/{row['nir_birth_year']}" if isinstance(month, str) else row["nir_birth_year"]
    dep, place = row["nir_birth_department"], row["nir_birth_commune"]
    if dep == "99":
        where = "à l'étranger" + (f" (pays {place})" if commune else "")
    else:
        where = f"dans le {dep}" + (f" (commune {place})" if commune else "")
    return f"le NIR indique : {'femme' if woman else 'homme'}, {born} en {when} {where}"


def _nir_fix(frame: Frame) -> pd.Series:
    d = _nir_differences(frame)
    out = []
    for i, row in frame.iterrows():
        gaps = [label for key, label in _NIR_GAPS.items() if d.at[i, key]]
        says = _nir_says(row, commune=bool(d.at[i, "place"]))
        out.append(f"{says} ; écart : {', '.join(gaps)} (vérifier l'acte de naissance)")
    return pd.Series(out, index=frame.index, dtype=object)


def _nir_place_fix(frame: Frame) -> pd.Series:
    out = [
        _nir_says(row, commune=True)
        + " (commune fusionnée, code pays ou département changé depuis la naissance ? "
        "vérifier l'acte)"
        for _, row in frame.iterrows()
    ]
    return pd.Series(out, index=frame.index, dtype=object)


def _nir_unusable_fix(frame: Frame) -> pd.Series:
    texts = {
        "invalid_key": "clé de contrôle du NIR fausse : vérifier les chiffres saisis",
        "malformed": "NIR mal formé (13 caractères et une clé de 2 chiffres attendus)",
    }
    other = (
        f"NIR d'une autre personne (née {NIR_OTHER_PERSON_YEARS} ans ou plus avant ou après "
        "le titulaire : celui d'un parent ?) : saisir le NIR du titulaire"
    )
    out = frame["nir_status"].map(texts).astype(object)
    return out.mask(_nir_other_person(frame).to_numpy(), other)


# --------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------

_NAMES = ("q_bn", "q_fn1", "q_sex")
_FN1_STATS = ("q_fn1_rank_m", "q_fn1_bucket_m", "q_fn1_rank_f", "q_fn1_bucket_f")
_BNF_STATS = ("q_bnf_rank_m", "q_bnf_bucket_m", "q_bnf_rank_f", "q_bnf_bucket_f")

RULES: tuple[Rule, ...] = (
    Rule(
        "R01",
        "names_inverted",
        BLOCK,
        "Birth name and first name probably inverted",
        "Nom de naissance et prénom probablement inversés : le nom transmis est un prénom "
        "courant et le prénom un nom de famille.",
        ("birth_name", "first_name_1", *_NAMES, *_FN1_STATS, *_BNF_STATS, "q_fn1_srank"),
        _inverted,
        _swap_fix,
        frozenset({"name_inverted"}),
    ),
    Rule(
        "R01B",
        "names_inverted_weak",
        WARN,
        "Birth name and first name possibly inverted",
        "Nom de naissance et prénom peut-être inversés : le nom transmis est un prénom "
        "courant, rare comme nom de famille, et le prénom un nom de famille courant.",
        (
            "birth_name",
            "first_name_1",
            *_NAMES,
            *_BNF_STATS,
            *_FN1_STATS,
            "q_bn_srank",
            "q_fn1_srank",
        ),
        _inverted_weak,
        _swap_fix,
        frozenset({"name_inverted"}),
    ),
    Rule(
        "R02A",
        "sex_first_name_exclusive",
        BLOCK,
        "Sex inconsistent with a first name given almost only to the other sex",
        "Sexe incohérent avec le prénom : ce prénom est presque exclusivement porté par "
        "l'autre sexe (fichier des prénoms INSEE).",
        ("q_sex", *_FN1_STATS),
        _sex_exclusive,
        _other_sex_fix,
        frozenset({"sex_wrong"}),
    ),
    Rule(
        "R02B",
        "sex_first_name_ambiguous",
        WARN,
        "First name given to both sexes, more often to the other one",
        "Prénom mixte plus souvent porté par l'autre sexe : vérifier le sexe à l'état civil.",
        ("q_sex", *_FN1_STATS),
        _sex_ambiguous,
        _other_sex_fix,
        frozenset({"sex_wrong"}),
    ),
    Rule(
        "R03A",
        "first_names_merged",
        BLOCK,
        "Several first names in prenom1",
        "Plusieurs prénoms dans le prénom 1 : la CDC compare le prénom 1 au premier prénom "
        "de l'état civil ; répartir les prénoms.",
        ("first_name_2", "q_fn1", "q_fn2", "q_fn3"),
        _several_first_names,
        _split_fix,
        frozenset({"first_names_merged", "compound_first_name_unhyphenated"}),
    ),
    Rule(
        "R03B",
        "first_name_with_spaces",
        WARN,
        "First name with spaces, parts unknown to INSEE",
        "Prénom 1 en plusieurs mots : vérifier s'il s'agit d'un seul prénom de l'état civil "
        "ou de plusieurs prénoms.",
        ("q_fn1",),
        _first_name_spaces_unknown,
        None,
        frozenset({"first_names_merged", "compound_first_name_unhyphenated"}),
    ),
    Rule(
        "R04A",
        "compound_without_hyphen",
        BLOCK,
        "Compound first name without its hyphen",
        "Prénom composé sans trait d'union : l'état civil l'écrit avec un trait d'union et "
        "la CDC tient compte de la ponctuation.",
        ("first_name_2", "q_fn1"),
        _compound_without_hyphen,
        _hyphen_fix,
        frozenset({"compound_first_name_unhyphenated", "first_names_merged"}),
    ),
    Rule(
        "R04B",
        "compound_unusual",
        WARN,
        "Hyphenated first name unknown as a compound, both parts known first names",
        "Prénom composé inhabituel : vérifier s'il s'agit de deux prénoms distincts.",
        ("q_fn1",),
        _unusual_compound,
        _unusual_compound_fix,
        frozenset({"first_names_merged"}),
    ),
    Rule(
        "R04C",
        "double_hyphen_out_of_period",
        WARN,
        "Double hyphen in a birth name of someone not born 2004-2011",
        "Double tiret dans le nom de naissance hors des naissances 2005-2010 : vérifier "
        "la graphie de l'état civil.",
        ("q_bn", "q_birth_year"),
        _double_hyphen_out_of_period,
        _double_hyphen_fix,
        frozenset({"birth_name_punctuation"}),
    ),
    Rule(
        "R04D",
        "double_name_2005_2010",
        WARN,
        "Double birth name of a 2005-2010 birth written without the double hyphen",
        "Nom double d'une personne née entre 2005 et 2010 : l'état civil l'écrit souvent "
        "avec un double tiret (NOM1--NOM2) ; vérifier l'acte.",
        ("q_bn", "q_birth_year"),
        _double_name_2005_2010,
        _double_name_fix,
        frozenset({"birth_name_punctuation"}),
    ),
    Rule(
        "R05A",
        "name_characters",
        BLOCK,
        "Digits, symbols or non-Latin characters in a name",
        "Caractère non admis dans un nom ou un prénom (chiffre, symbole, alphabet non "
        "latin) : transcrire comme sur l'état civil français.",
        NAME_COLUMNS,
        _bad_characters,
        _bad_characters_fix,
    ),
    Rule(
        "R05B",
        "name_spacing",
        WARN,
        "Leading, trailing or double spaces, spaces around a hyphen or apostrophe, "
        "a tab, line break or no-break space",
        "Espaces superflus dans un nom ou un prénom (début, fin, doubles, autour d'un "
        "tiret ou d'une apostrophe, tabulation, retour à la ligne ou espace insécable).",
        NAME_COLUMNS,
        _spacing,
        _spacing_fix,
    ),
    Rule(
        "R05C",
        "name_typography",
        WARN,
        "Typographic apostrophe or dash, Œ/Æ ligature in a name",
        "Apostrophe ou tiret typographique, ou ligature Œ/Æ : transmettre la forme simple "
        "(' - OE AE) comme le répertoire d'identification.",
        NAME_COLUMNS,
        _typography,
        _typography_fix,
    ),
    Rule(
        "R05D",
        "birth_name_punctuation_variant",
        WARN,
        "Birth name spelled with punctuation unlike its usual INSEE form",
        "Ponctuation du nom de naissance inhabituelle (tiret, espace, apostrophe) : la CDC "
        "en tient compte ; vérifier la graphie de l'état civil.",
        ("q_bn",),
        _punctuation_variant,
        _punctuation_variant_fix,
        frozenset({"birth_name_punctuation"}),
    ),
    Rule(
        "R06",
        "usage_name_as_birth_name",
        WARN,
        "Usage (married) name possibly sent as the birth name",
        "Le nom transmis est peut-être le nom d'usage (nom d'épouse) : la CDC attend le "
        "nom de naissance ; vérifier sur l'acte de naissance.",
        ("usage_name", "q_un", "q_bn", "q_sex", "q_age"),
        _usage_as_birth,
        None,
        frozenset({"usage_name_as_birth_name"}),
    ),
    Rule(
        "R07A",
        "birth_date_estimated",
        WARN,
        "Birth date flagged as estimated: day and month not sent",
        "Date de naissance estimée : seule l'année sera transmise ; compléter jour et mois "
        "depuis l'état civil.",
        ("birth_date_is_estimated",),
        _estimated,
        None,
        frozenset({"birth_day_month_nil"}),
    ),
    Rule(
        "R07B",
        "birth_date_default",
        WARN,
        "Birth date 1 January or 31 December of a person born abroad (default date)",
        "Date de naissance au 1er janvier ou au 31 décembre (date par défaut probable) : "
        "vérifier jour et mois.",
        ("q_birth", "born_in_france", "birth_date_is_estimated"),
        _default_date,
        None,
        frozenset({"birth_day_month_nil", "birth_day_month_wrong"}),
    ),
    Rule(
        "R07C",
        "first_name_2_missing",
        WARN,
        "Third first name without a second one",
        "Prénom 3 renseigné sans prénom 2 : décaler les prénoms.",
        ("first_name_2", "first_name_3"),
        _gap_in_first_names,
        _gap_fix,
        frozenset({"first_names_2_3_wrong"}),
    ),
    Rule(
        "R08A",
        "birth_commune_unknown",
        WARN,
        "Birth commune code unknown to the COG (current and older codes)",
        "Code INSEE de la commune de naissance inconnu du Code officiel géographique "
        "(code postal saisi à la place ?).",
        ("birth_commune_insee", "born_in_france", "birth_department_code"),
        _commune_unknown,
        _commune_unknown_fix,
        frozenset({"birth_commune_wrong"}),
    ),
    Rule(
        "R08B",
        "birth_department_mismatch",
        WARN,
        "Birth département and commune code disagree",
        "Département et commune de naissance incohérents : vérifier le code INSEE.",
        ("birth_commune_insee", "birth_department_code", "born_in_france"),
        _department_mismatch,
        None,
        frozenset({"birth_commune_wrong"}),
    ),
    Rule(
        "R08C",
        "birth_country_missing",
        WARN,
        "Born abroad without a country code",
        "Naissance à l'étranger sans code pays (ou avec le code France) : renseigner le "
        "pays de naissance.",
        ("born_in_france", "birth_country_code"),
        _country_missing,
        None,
    ),
    Rule(
        "R08D",
        "birth_country_unknown",
        WARN,
        "Country code unknown to the INSEE list",
        "Code pays de naissance inconnu de la liste INSEE des pays : corriger le code.",
        ("born_in_france", "birth_country_code"),
        _country_unknown,
        None,
    ),
    Rule(
        "R08E",
        "birthplace_missing",
        WARN,
        "Birthplace missing (origin unknown, or no commune for a French birth)",
        "Lieu de naissance absent : la CDC ne pourra pas départager des homonymes ; "
        "renseigner la commune (code INSEE) ou le pays.",
        ("born_in_france", "birth_commune_insee", "birth_city_label"),
        _birthplace_missing,
        None,
        frozenset({"birth_commune_nil"}),
    ),
    Rule(
        "R09A",
        "age_implausible",
        BLOCK,
        "Age at award below 15 or above 85",
        "Âge à l'obtention invraisemblable (moins de 15 ans ou plus de 85 ans) : vérifier "
        "la date de naissance et la date d'obtention.",
        ("q_age",),
        _age_implausible,
        None,
        frozenset({"birth_year_wrong"}),
    ),
    Rule(
        "R09B",
        "birth_year_out_of_range",
        BLOCK,
        "Birth year before 1900 or in the future",
        "Année de naissance hors limites (avant 1900 ou dans le futur).",
        ("q_birth_year", "q_today"),
        _birth_year_range,
        None,
        frozenset({"birth_year_wrong"}),
    ),
    Rule(
        "R09C",
        "award_before_passport",
        BLOCK,
        "Award date before 2021-07-01",
        "Date d'obtention antérieure au 1er juillet 2021 : hors du périmètre du Passeport "
        "de compétences.",
        ("q_award",),
        _award_before_passport,
    ),
    Rule(
        "R09D",
        "award_in_future",
        BLOCK,
        "Award date in the future",
        "Date d'obtention dans le futur : vérifier la date du jury.",
        ("q_award", "q_today"),
        _award_future,
    ),
    Rule(
        "R09E",
        "award_late",
        NOTE,
        "Award older than three months (legal transmission deadline)",
        "Obtention de plus de trois mois : le délai légal de transmission est dépassé, "
        "transmettre sans attendre.",
        ("q_award", "q_today"),
        _award_late,
    ),
    Rule(
        "R09F",
        "award_date_missing",
        BLOCK,
        "Award date missing",
        "Date d'obtention absente : à compléter dans le logiciel de scolarité.",
        ("q_award",),
        _award_missing,
    ),
    Rule(
        "R13A",
        "nir_disagrees",
        BLOCK,
        "Sex or birth year disagree with the holder's NIR",
        "Le sexe ou l'année de naissance déclarés contredisent le NIR : la CDC ne retrouvera "
        "pas le titulaire ; corriger d'après l'acte de naissance.",
        (*_NIR_COLUMNS, *_NIR_DECLARED),
        _nir_disagrees,
        _nir_fix,
        frozenset({"sex_wrong", "birth_year_wrong"}),
    ),
    Rule(
        "R13D",
        "nir_disagrees_later_stage",
        WARN,
        "Birth month or birthplace disagree with the holder's NIR (sex and year agree)",
        "Le mois ou le lieu de naissance déclarés contredisent le NIR : la CDC ne les "
        "compare que pour départager des homonymes, le passage est donc transmis ; "
        "corriger d'après l'acte de naissance.",
        (*_NIR_COLUMNS, *_NIR_DECLARED),
        _nir_disagrees_later_stage,
        _nir_fix,
        frozenset({"birth_day_month_wrong", "birth_commune_wrong"}),
    ),
    Rule(
        "R13B",
        "nir_unusable",
        WARN,
        "NIR with a wrong control key, malformed, or someone else's: identity not checked",
        "NIR inutilisable (clé de contrôle fausse, format incorrect, ou NIR d'une autre "
        "personne, un parent peut-être) : l'identité n'a pas pu être vérifiée ; corriger sa "
        "saisie dans le logiciel de scolarité.",
        ("nir_status", "nir_birth_year", "q_birth_year"),
        _nir_unusable,
        _nir_unusable_fix,
    ),
    Rule(
        "R13C",
        "nir_birthplace_differs",
        WARN,
        "Birthplace differs from the NIR's, possibly for a historical reason",
        "Lieu de naissance différent de celui du NIR (commune fusionnée depuis, code pays "
        "changé, naissance avant l'indépendance) : vérifier l'acte de naissance.",
        (*_NIR_COLUMNS, *_NIR_DECLARED),
        _nir_place_differs,
        _nir_place_fix,
        frozenset({"birth_commune_wrong"}),
    ),
    Rule(
        "R10A",
        "certification_code_shape",
        BLOCK,
        "Certification code not shaped RNCP+digits or RS+digits",
        "Code de certification mal formé (attendu RNCP suivi de chiffres ou RS suivi de "
        "chiffres) : la CDC rejettera la certification.",
        ("q_cert_type", "q_cert_code"),
        _cert_shape,
        _cert_shape_fix,
    ),
    Rule(
        "R10B",
        "certification_type_mismatch",
        BLOCK,
        "Certification type and code disagree",
        "Type de certification incohérent avec le code (RS avec un code RNCP, ou type inconnu).",
        ("q_cert_type", "q_cert_code"),
        _cert_type_mismatch,
        _cert_type_fix,
    ),
    Rule(
        "R10C",
        "certification_unmapped",
        BLOCK,
        "No RNCP/RS certification for the diploma",
        "Diplôme sans code RNCP/RS (table de correspondance à compléter) : passage non transmis.",
        ("q_cert_type", "q_cert_code", "q_cert_map_line"),
        _cert_unmapped,
    ),
    Rule(
        "R10D",
        "certification_map_line_invalid",
        BLOCK,
        "The certification map line of the diploma version is malformed or ambiguous",
        "Ligne de la table de correspondance diplôme → RNCP/RS refusée (type et code "
        "incohérents, code sans préfixe, année illisible, lignes en conflit) : passage non "
        "transmis jusqu'à la correction de la ligne indiquée.",
        ("q_cert_type", "q_cert_code", "q_cert_map_line"),
        _cert_map_line,
        _cert_map_line_fix,
    ),
    Rule(
        "R11A",
        "duplicate_award",
        BLOCK,
        "Same person (source id or civil identity) and certification twice in the batch",
        "Doublon : la même personne (même identifiant source ou même état civil) a déjà ce "
        "passage de certification dans le lot ; un seul passage est transmis.",
        ("q_twin_key",),
        _duplicate_award,
        _duplicate_fix,
    ),
    Rule(
        "R11B",
        "person_two_ids",
        WARN,
        "One civil identity under several source person ids",
        "Même identité (nom, prénom, sexe, date de naissance) sous plusieurs identifiants "
        "de la source : doublon de dossier probable.",
        ("source_person_id", *_NAMES, "q_birth"),
        _two_ids,
        _two_ids_fix,
    ),
    Rule(
        "R12",
        "xsd_unholdable",
        BLOCK,
        "Value the XSD cannot hold (length, characters, required value)",
        "Valeur que le schéma XSD du flux ne peut pas contenir (longueur, caractère, "
        "donnée obligatoire) : jamais tronquée, à corriger à la source.",
        (*XSD_TEXT, "sex", "q_sex", "q_birth_year"),
        _xsd,
        _xsd_fix,
    ),
)

RULE_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
assert len(RULE_BY_ID) == len(RULES), "duplicate rule id"


def evaluate_all(frame: Frame) -> pd.DataFrame:
    """Every rule on the prepared frame, without Great Expectations (one column per id).

    The gate runs the same functions through the GX suite; this is the direct path
    used by the tests and as a cross-check."""
    return pd.DataFrame({r.id: r.evaluate(frame).to_numpy() for r in RULES}, index=frame.index)


PUNCTUATION_RULE = "R05D"


def rules_for(policy=None) -> tuple[Rule, ...]:
    """The catalogue under the institution's policy (``config.QualityPolicy``): with
    ``birth_name_punctuation: hold`` (the default), R05D quarantines instead of warning.
    ``RULES`` itself keeps R05D a WARN: the catalogue says what a rule finds, the policy
    what the institution does about it."""
    if policy is None or policy.birth_name_punctuation != "hold":
        return RULES
    from dataclasses import replace

    return tuple(replace(r, severity=BLOCK) if r.id == PUNCTUATION_RULE else r for r in RULES)

"""Derived columns the rules read: name keys, INSEE statistics, dates, certification.

Why a separate step: several rules read the same keys (the birth name and first name
keys feed rules 1 to 5), so they are computed once, vectorised (each distinct
spelling once), and added as ``q_*`` columns beside the canonical ones. The Great
Expectations suite then validates this prepared frame; every rule declares the
columns it reads.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cpf_deposit.quality.names import cdc_key, first_name_key, map_unique
from cpf_deposit.quality.reference import (
    ABSENT,
    NO_RANK,
    FirstNameStats,
    first_names,
    surnames,
)
from cpf_deposit.sources.canonical import COLUMN_NAMES, NIR_COLUMN_NAMES

TEXT_COLUMNS = tuple(
    c
    for c in COLUMN_NAMES
    if c not in ("academic_year", "birth_date", "award_date", "results_status_date")
    and c != "last_modified"
)
DATE_COLUMNS = ("birth_date", "award_date")


def first_name_lookup(name: str | None, compounds: bool = True) -> FirstNameStats | None:
    """INSEE statistics of a first name; an unlisted compound falls back on its first
    part (JEAN-KEVIN is read as JEAN), as INSEE counts only frequent compounds."""
    if name is None:
        return None
    key = first_name_key(name)
    if not key:
        return None
    table = first_names()
    stats = table.get(key)
    if stats is None and compounds and "-" in key.strip("-"):
        stats = table.get(key.strip("-").split("-")[0])
    return stats


def _stats_columns(names: pd.Series, prefix: str, compounds: bool) -> dict[str, np.ndarray]:
    codes, uniques = pd.factorize(names, use_na_sentinel=True)
    stats = [first_name_lookup(u, compounds) for u in np.asarray(uniques, dtype=object).tolist()]
    cols = {}
    for attr in ("rank_m", "bucket_m", "rank_f", "bucket_f"):
        missing = NO_RANK if attr.startswith("rank") else ABSENT
        table = np.array(
            [missing if s is None else getattr(s, attr) for s in stats] + [missing],
            dtype=np.int64,
        )
        cols[f"{prefix}_{attr}"] = table[np.where(codes < 0, len(stats), codes)]
    return cols


def _surname_rank(names: pd.Series) -> np.ndarray:
    ranks = surnames().rank
    codes, uniques = pd.factorize(names, use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object).tolist()
    table = np.array([ranks.get(u, NO_RANK) for u in values] + [NO_RANK], dtype=np.int64)
    return table[np.where(codes < 0, len(uniques), codes)]


def to_dates(values: pd.Series) -> pd.Series:
    """Dates as the sources give them (date, datetime, ISO text) to datetime64; bad -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[s]")
    text = values.astype("str").str.slice(0, 10)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def _text(df: pd.DataFrame, name: str) -> pd.Series:
    """A canonical text column as pandas strings, blank -> missing (absent column too)."""
    if name not in df:
        return pd.Series(pd.array([None] * len(df), dtype="str"), index=df.index)
    s = df[name]
    if s.dtype != "str":
        s = s.astype("str")
    return s


def resolve_certifications(df: pd.DataFrame, certification_map=None) -> tuple[pd.Series, pd.Series]:
    """(type, code) as the mapping step would send them: the source's own RNCP/RS code
    when it has one (a bare number gets the type as prefix, the column's contract), else
    the certification map's entry for (diploma, version, academic year); missing when
    neither."""
    ctype = _text(df, "certification_type").str.strip().str.upper()
    code = _text(df, "certification_code").str.strip()
    both = ctype.notna() & code.notna()
    if both.any():  # the mapper's rule: a code not starting with its type gets it as prefix
        pairs = pd.DataFrame({"t": ctype[both], "c": code[both]})
        uniq = pairs.drop_duplicates()
        uniq = uniq.assign(
            f=[c if c.upper().startswith(t) else f"{t}{c}" for t, c in uniq.to_numpy().tolist()]
        )
        code = code.copy()
        code.loc[pairs.index] = pairs.merge(uniq, on=["t", "c"], how="left")["f"].to_numpy()
    both = ctype.notna() & code.notna()
    ctype = ctype.where(both)
    code = code.where(both)
    if certification_map is not None and (~both).any():
        need = df.loc[~both]
        keys = pd.DataFrame(
            {
                "d": _text(need, "diploma_code"),
                "v": _text(need, "diploma_version"),
                "y": pd.to_numeric(need.get("academic_year"), errors="coerce")
                if "academic_year" in need
                else np.nan,
            },
            index=need.index,
        )
        found: dict[tuple, tuple[str | None, str | None]] = {}
        for d, v, y in keys.drop_duplicates().itertuples(index=False):
            year = None if pd.isna(y) else int(y)
            entry = certification_map.lookup(
                None if pd.isna(d) else d, None if pd.isna(v) else v, year
            )
            found[(d, v, y)] = (
                (entry.certification_type, entry.certification_code) if entry else (None, None)
            )
        pairs = [found[t] for t in keys.itertuples(index=False, name=None)]
        ctype = ctype.astype(object)
        code = code.astype(object)
        ctype.loc[need.index] = [p[0] for p in pairs]
        code.loc[need.index] = [p[1] for p in pairs]
        ctype = ctype.astype("str")
        code = code.astype("str")
    return ctype, code


def certification_refusals(df: pd.DataFrame, certification_map, unresolved: pd.Series) -> pd.Series:
    """Per row without a certification (``unresolved``): the French reason, naming the
    line, why a bad line of the certification map refuses its diploma version and year
    (rule R10D); missing elsewhere."""
    out = pd.Series(pd.array([None] * len(df), dtype="str"), index=df.index)
    if certification_map is None or not getattr(certification_map, "bad_lines", None):
        return out
    need = df.loc[unresolved.fillna(False).astype(bool)]
    if need.empty:
        return out

    def cells(name: str) -> list:
        return [None if pd.isna(x) else x for x in _text(need, name).tolist()]

    years = (
        pd.to_numeric(need["academic_year"], errors="coerce").tolist()
        if "academic_year" in need
        else [None] * len(need)
    )
    keys = list(
        zip(
            cells("diploma_code"),
            cells("diploma_version"),
            [None if pd.isna(y) else int(y) for y in years],
            strict=True,
        )
    )
    reasons: dict[tuple, str | None] = {}
    for key in dict.fromkeys(keys):
        bad = certification_map.refusal(*key)
        reasons[key] = None if bad is None else bad.reason
    out.loc[need.index] = [reasons[k] for k in keys]
    return out


def _insee_department(code: str) -> str | None:
    """INSEE département of a source département code: 057 -> 57, 02A -> 2A, 974 -> 974;
    020 (Corsica before 1976) stays 20."""
    from cpf_deposit.sources.birthplace import insee_departments

    deps = insee_departments(code) if code.strip() else ()
    return "20" if deps == ("2A", "2B") else (deps[0] if deps else None)


def _commune_department(code: str) -> str | None:
    from cpf_deposit.sources.reference import department_of

    return department_of(code) if re.fullmatch(r"(?:[0-9]{2}|2[AB])[0-9]{3}", code) else None


def declared_birthplace(out: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(INSEE département, INSEE place code) of the declared birthplace, as the NIR
    writes them: ``44``/``2A``/``974`` and the commune code for a French birth
    (département from the source code, else from the commune code), ``99`` and ``99``
    + the country code for a birth abroad; missing when the source does not say."""
    born = out["born_in_france"].str.strip().str.upper()
    france = (born == "Y").fillna(False).astype(bool)
    abroad = (born == "N").fillna(False).astype(bool)
    commune = out["birth_commune_insee"].str.strip().str.upper()
    commune = commune.where(commune != "")
    dep = map_unique(out["birth_department_code"], _insee_department)
    dep = dep.where(dep.notna(), map_unique(commune, _commune_department))
    country = out["birth_country_code"].str.strip()
    shaped = (country.str.fullmatch(r"[0-9]{3}") & (country != "100")).fillna(False)
    dep = dep.where(france).mask(abroad, "99")
    place = commune.where(france).mask(abroad, ("99" + country).where(shaped.astype(bool)))
    return dep.astype("str"), place.astype("str")


def prepare(
    df: pd.DataFrame,
    *,
    today: dt.date | None = None,
    certification_map=None,
) -> pd.DataFrame:
    """The canonical rows plus the ``q_*`` columns, on a fresh RangeIndex.

    Missing canonical columns are added empty, so a partial extract still runs (the
    rules that need the column then report what is absent)."""
    today = today or dt.date.today()
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    src = df.reset_index(drop=True)
    for name in COLUMN_NAMES:
        if name in DATE_COLUMNS or name == "academic_year":
            out[name] = src.get(name, None)
        else:
            out[name] = _text(src, name)
    for name in NIR_COLUMN_NAMES:  # the NIR's facts (the extraction dropped the NIR)
        if name != "nir_birth_year":
            out[name] = _text(src, name)
        elif name in src:
            out[name] = pd.to_numeric(src[name], errors="coerce").astype("Int64")
        else:
            out[name] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["q_row"] = np.arange(1, len(df) + 1)

    cols: dict[str, object] = {}
    cols["q_bn"] = map_unique(out["birth_name"], cdc_key)
    cols["q_un"] = map_unique(out["usage_name"], cdc_key)
    cols["q_fn1"] = map_unique(out["first_name_1"], cdc_key)
    cols["q_fn2"] = map_unique(out["first_name_2"], cdc_key)
    cols["q_fn3"] = map_unique(out["first_name_3"], cdc_key)
    cols["q_sex"] = out["sex"].str.strip().str.upper()
    cols.update(_stats_columns(out["first_name_1"], "q_fn1", compounds=True))
    # the birth name read as a first name (exact spelling only: MARTIN-DURAND is no MARTIN)
    cols.update(_stats_columns(out["birth_name"], "q_bnf", compounds=False))
    cols["q_bn_srank"] = _surname_rank(cols["q_bn"])
    cols["q_fn1_srank"] = _surname_rank(cols["q_fn1"])

    birth = to_dates(out["birth_date"]) if "birth_date" in src else pd.Series(pd.NaT, out.index)
    award = to_dates(out["award_date"]) if "award_date" in src else pd.Series(pd.NaT, out.index)
    cols["q_birth"] = birth
    cols["q_award"] = award
    cols["q_birth_year"] = birth.dt.year.astype("Int64")
    # the month as it is sent: none when the source flags the birth date as estimated
    estimated = (out["birth_date_is_estimated"].str.strip().str.upper() == "Y").fillna(False)
    cols["q_birth_month"] = birth.dt.month.astype("Int64").mask(estimated.astype(bool))
    cols["q_birth_dep"], cols["q_birth_place"] = declared_birthplace(out)
    age_days = (award - birth).dt.days
    cols["q_age"] = (age_days / 365.25).astype("Float64")
    cols["q_today"] = pd.Series(np.datetime64(today, "s"), index=out.index)

    ctype, code = resolve_certifications(out, certification_map)
    cols["q_cert_type"] = ctype
    cols["q_cert_code"] = code
    cols["q_cert_map_line"] = certification_refusals(out, certification_map, code.isna())
    cols["q_twin_key"] = twin_keys(out, cols)
    return pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1)


def twin_keys(out: pd.DataFrame, cols: Mapping[str, pd.Series]) -> pd.Series:
    """For a second award of the same certification to the same person, the source key
    of the passage that is kept (the earliest award, then the smallest key); NA else.

    The same person is the same source person id *or* the same civil identity as the
    CDC keys it (birth name, first name, sex, birth date): one student entered twice
    in the source under two ids is one holder for the CDC, who would store the award
    twice. Both links are followed transitively (a small union-find)."""
    n = len(out)
    code = cols["q_cert_code"]
    cert = pd.factorize(code)[0]
    has = lambda s: (s.notna() & (s.astype("str").str.strip() != "")).to_numpy()  # noqa: E731
    pid = out["source_person_id"]
    complete = has(cols["q_bn"]) & has(cols["q_fn1"]) & has(cols["q_sex"])
    complete &= cols["q_birth"].notna().to_numpy()
    links = []
    pid_code = pd.factorize(pid)[0]
    links.append(np.where(has(pid), pid_code, -1))
    identity = pd.DataFrame(
        {k: cols[k] for k in ("q_bn", "q_fn1", "q_sex", "q_birth")}, index=out.index
    )
    ident = identity.groupby(list(identity.columns), dropna=False, sort=False).ngroup()
    links.append(np.where(complete, ident.to_numpy(), -1))
    component = np.arange(n)
    for _ in range(n + 1):  # converges in a few passes: each pass merges linked groups
        before = component.copy()
        for link in links:
            frame = pd.DataFrame({"l": link, "c": cert, "comp": component})
            linked = (frame["l"] >= 0) & (frame["c"] >= 0)
            low = frame[linked].groupby(["l", "c"])["comp"].transform("min")
            component[linked.to_numpy()] = np.minimum(component[linked.to_numpy()], low)
        if np.array_equal(before, component):
            break
    keys = out["source_record_key"].astype("str")
    order = pd.DataFrame(
        {"comp": component, "award": cols["q_award"].to_numpy(), "key": keys.to_numpy()},
        index=out.index,
    ).sort_values(["comp", "award", "key"], kind="stable", na_position="last")
    first = order.groupby("comp")["key"].transform("first")
    twin = first.where(first != order["key"]).reindex(out.index)
    return twin.where(code.notna() & (cert >= 0)).astype("str")


def as_mapping(row: pd.Series) -> Mapping[str, object]:
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}

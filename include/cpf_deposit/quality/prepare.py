"""Derived columns the rules read: name keys, INSEE statistics, dates, certification.

Why a separate step: several rules read the same keys (the birth name and first name
keys feed rules 1 to 5), so they are computed once, vectorised (each distinct
spelling once), and added as ``q_*`` columns beside the canonical ones. The Great
Expectations suite then validates this prepared frame; every rule declares the
columns it reads.
"""

from __future__ import annotations

import datetime as dt
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
from cpf_deposit.sources.canonical import COLUMN_NAMES

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
    when it has one (a bare number gets the type as prefix), else the certification
    map's entry for (diploma, version, academic year); missing when neither."""
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
    age_days = (award - birth).dt.days
    cols["q_age"] = (age_days / 365.25).astype("Float64")
    cols["q_today"] = pd.Series(np.datetime64(today, "s"), index=out.index)

    ctype, code = resolve_certifications(out, certification_map)
    cols["q_cert_type"] = ctype
    cols["q_cert_code"] = code
    return pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1)


def as_mapping(row: pd.Series) -> Mapping[str, object]:
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}

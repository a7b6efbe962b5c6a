"""Hand-made canonical rows for the identity gate tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cpf_deposit.sources.canonical import COLUMN_NAMES, NIR_COLUMN_NAMES

TODAY = dt.date(2026, 3, 1)

BASE = {
    "source_system": "APOGEE",
    "source_record_key": "1-LDROIT-1",
    "source_person_id": "1",
    "birth_name": "DUPONT",
    "usage_name": None,
    "first_name_1": "PIERRE",
    "first_name_2": "LOUIS",
    "first_name_3": None,
    "sex": "M",
    "birth_date": "2001-05-17",
    "birth_date_is_estimated": "N",
    "born_in_france": "Y",
    "birth_department_code": "044",
    "birth_commune_insee": "44109",
    "birth_city_label": "NANTES",
    "birth_country_code": "100",
    "certification_type": "RNCP",
    "certification_code": "RNCP35959",
    "diploma_code": "LDROIT",
    "diploma_version": "1",
    "academic_year": 2025,
    "award_date": "2026-01-20",
}


def canonical(*rows: dict) -> pd.DataFrame:
    """Canonical frame: each row is BASE with its overrides; keys made unique. The NIR
    facts (as the extraction writes them) are absent unless a row sets them."""
    names = [*COLUMN_NAMES, *NIR_COLUMN_NAMES]
    records = []
    for i, overrides in enumerate(rows):
        r = {c: None for c in names}
        r.update(BASE)
        r["source_record_key"] = f"{i + 1}-LDROIT-1"
        r["source_person_id"] = str(i + 1)
        r.update(overrides)
        records.append(r)
    df = pd.DataFrame.from_records(records, columns=names)
    df["nir_birth_year"] = df["nir_birth_year"].astype("Int64")
    return df.astype({c: "str" for c in names if c not in ("academic_year", "nir_birth_year")})


@pytest.fixture
def make():
    return canonical

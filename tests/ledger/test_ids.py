"""idTechnique and data hashes: stable, distinct, keyed, free of personal data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpf_deposit.ledger.ids import (
    _hashed_parts,
    _text,
    data_hash,
    make_technical_id,
    technical_ids,
)
from cpf_deposit.model import FIELDS, Kind
from tests import strategies
from tests.ledger_helpers import make_passage

KEY = bytes(range(32))
BASE = ("APOGEE", "20231234-DIP-1-2023", "RNCP", "RNCP24514")


def test_technical_id_is_deterministic_short_and_ascii():
    a = make_technical_id(KEY, *BASE)
    assert a == make_technical_id(KEY, *BASE)
    assert re.fullmatch(r"T1-[A-Z2-7]{32}", a)
    assert len(a) <= 255


@pytest.mark.parametrize(
    "changed",
    [
        ("GEODE", *BASE[1:]),
        (BASE[0], "20231235-DIP-1-2023", *BASE[2:]),
        (*BASE[:2], "RS", BASE[3]),
        (*BASE[:3], "RNCP34034"),
    ],
    ids=["source_system", "record_key", "certification_type", "certification_code"],
)
def test_each_part_of_the_award_gives_another_id(changed):
    assert make_technical_id(KEY, *changed) != make_technical_id(KEY, *BASE)


def test_parts_cannot_run_into_each_other():
    assert make_technical_id(KEY, "APOGEE", "12-3", "RNCP", "X") != make_technical_id(
        KEY, "APOGEE", "12", "-3RNCP", "X"
    )


def test_source_system_case_does_not_matter():
    assert make_technical_id(KEY, "apogee", *BASE[1:]) == make_technical_id(KEY, *BASE)


def test_id_depends_on_the_key_and_reveals_no_record_key():
    a = make_technical_id(KEY, *BASE)
    assert a != make_technical_id(bytes(32), *BASE)
    assert "20231234" not in a


def test_many_awards_never_share_an_id():
    ids = {make_technical_id(KEY, "APOGEE", f"{n}-DIP", "RNCP", "RNCP1") for n in range(20000)}
    assert len(ids) == 20000


@pytest.mark.parametrize("bad", ["", None])
def test_missing_provenance_is_refused(bad):
    with pytest.raises(ValueError):
        make_technical_id(KEY, "APOGEE", bad, "RNCP", "RNCP1")


@pytest.mark.parametrize(
    "change",
    [
        {"birth_name": "AUTRE"},
        {"birth_day": 3},
        {"award_date": dt.date(2024, 1, 1)},
        {"mention": None},
        {"is_final": False},
        {"digcomp_results": ((3, "1", "2"),)},
        {"birth_insee_code": None, "birth_postal_code": "72000"},
    ],
)
def test_data_hash_follows_every_value_sent(change):
    p = make_passage(KEY, 1)
    assert data_hash(KEY, dataclasses.replace(p, **change)) != data_hash(KEY, p)


@pytest.mark.parametrize(
    "change",
    [{"technical_id": "OTHER"}, {"source_system": "GEODE"}, {"source_record_key": "x"}],
)
def test_data_hash_ignores_ids_and_provenance(change):
    p = make_passage(KEY, 1)
    assert data_hash(KEY, dataclasses.replace(p, **change)) == data_hash(KEY, p)


def test_data_hash_is_keyed():
    p = make_passage(KEY, 1)
    assert data_hash(KEY, p) != data_hash(bytes(32), p)
    assert len(data_hash(KEY, p)) == 32


def test_data_hash_is_pinned():
    """Any change to the hashed text makes every passage in every ledger look changed."""
    p = make_passage(KEY, 1)
    assert data_hash(KEY, p) == "df5e2b52734fa5984bb4cc3b60d08e02"
    q = dataclasses.replace(
        p,
        first_name_2="Zoé",
        is_final=True,
        digcomp_results=((1, "12", None),),
        valid_until=dt.date(2030, 1, 1),
    )
    assert data_hash(KEY, q) == "b4c27f35744b25c9f5a17f385559509b"


def _spelled(p) -> str:
    """The hashed text as specified: name<RS>value of each known value, in name order."""
    parts = []
    for name in sorted(
        f.name for f in FIELDS if f.kind is not Kind.INTERNAL and f.name != "technical_id"
    ):
        value = getattr(p, name)
        if value is None or value == ():
            continue
        parts.append(f"{name}\x1e{_text(value)}")
    return "\x1f".join(parts)


@settings(max_examples=300, deadline=None)
@given(strategies.passages(valid_only=False))
def test_generated_hash_text_is_the_specified_one(p):
    try:
        expected = _spelled(p)
    except TypeError:  # a value of no hashable type: refused the same way
        with pytest.raises(TypeError):
            _hashed_parts(p)
        return
    assert "\x1f".join(_hashed_parts(p)) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["APOGEE", "geode", "PÉGASE"]),
            st.text(min_size=1, max_size=30),
            st.none() | st.sampled_from([("RNCP", "RNCP24514"), ("RS", "RS5000")]),
        ),
        max_size=30,
    )
)
def test_batch_technical_ids_are_the_row_ids(rows):
    systems, keys, certs = ([r[i] for r in rows] for i in range(3))
    expected = [make_technical_id(KEY, s, k, *c) if c else None for s, k, c in rows]
    assert technical_ids(KEY, systems, keys, certs) == expected


def test_batch_technical_ids_refuse_an_empty_part_as_the_row_form_does():
    with pytest.raises(ValueError, match="non-empty"):
        technical_ids(KEY, ["APOGEE"], [""], [("RNCP", "RNCP24514")])

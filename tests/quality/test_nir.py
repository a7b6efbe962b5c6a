"""The NIR cross-check: parsing and key (cpf_deposit.sources.nir), the rules R13A-C, and
the promise that the NIR never leaves the extraction (files, logs, gate outputs).

Every NIR below is real-shaped: 13 characters (sex, year, month, INSEE birthplace, order
number) and the key INSEE computes, 97 - (number mod 97) with 2A read as 19, 2B as 18.
They are made up for the tests and belong to nobody.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpf_deposit.quality.gate import run_gate
from cpf_deposit.quality.prepare import prepare
from cpf_deposit.quality.rules import evaluate_all
from cpf_deposit.sources.canonical import NIR_COLUMN_NAMES, NIR_SOURCE_COLUMNS
from cpf_deposit.sources.nir import (
    FACTS,
    NirError,
    NirFacts,
    facts_frame,
    key_of,
    nir_fact_arrays,
    parse_many,
    parse_nir,
    resolve_century,
)
from tests.quality.conftest import TODAY, canonical

V = "valid"

# (13 characters, key, declared birth year, expected facts)
VALID = [
    # mainland: Le Mans, Nantes
    ("1010372181123", "18", 2001, (V, "M", 2001, "03", "72", "72181")),
    ("2981144109042", "86", 1998, (V, "F", 1998, "11", "44", "44109")),
    # Corsica since 1976: 2A read as 19, 2B as 18 in the key
    ("282052A004321", "52", 1982, (V, "F", 1982, "05", "2A", "2A004")),
    ("100072B033017", "24", 2000, (V, "M", 2000, "07", "2B", "2B033")),
    # Corsica before 1976: département 20
    ("1700920004005", "73", 1970, (V, "M", 1970, "09", "20", "20004")),
    # overseas: 3-character département, 2-digit commune
    ("2950197120007", "93", 1995, (V, "F", 1995, "01", "971", "97120")),
    ("1990397411123", "57", 1999, (V, "M", 1999, "03", "974", "97411")),
    ("2040697611088", "06", 2004, (V, "F", 2004, "06", "976", "97611")),
    # born abroad: 99 + INSEE country code (Algeria; Morocco with an unknown month, 40)
    ("1991299352456", "32", 1999, (V, "M", 1999, "12", "99", "99352")),
    ("2034099350123", "95", 2003, (V, "F", 2003, None, "99", "99350")),
    # unknown months 20 and 50-99
    ("1652075115012", "37", 1965, (V, "M", 1965, None, "75", "75115")),
    ("1855578006084", "18", 1985, (V, "M", 1985, None, "78", "78006")),
    # key 97 (number divisible by 97)
    ("1010372181044", "97", 2001, (V, "M", 2001, "03", "72", "72181")),
]


@pytest.mark.parametrize(("body", "key", "declared", "facts"), VALID, ids=[v[0] for v in VALID])
def test_valid_nirs_give_their_facts(body, key, declared, facts):
    assert key_of(body) == int(key)
    got = parse_nir(body, key, declared_year=declared, award_year=2024)
    assert tuple(getattr(got, f) for f in FACTS) == facts


@pytest.mark.parametrize(
    ("number", "key", "status"),
    [
        # absent
        (None, None, "absent"),
        ("", "18", "absent"),
        ("   ", None, "absent"),
        # malformed: length, sex digit, letters, month, key shape, no key
        ("1010372181", "18", "malformed"),
        ("10103721811234", "18", "malformed"),
        ("0010372181123", "18", "malformed"),
        ("5010372181123", "18", "malformed"),
        ("1010372C81123", "18", "malformed"),
        ("1011372181123", "95", "malformed"),  # month 13
        ("1012572181123", "18", "malformed"),  # month 25
        ("1010372181123", "1X", "malformed"),
        ("1010372181123", None, "malformed"),
        ("1010372181123", "123", "malformed"),
        # wrong key (typo in a digit, Corsica keyed as 20, swapped key digits)
        ("1010372181123", "45", "invalid_key"),
        ("1010372181132", "18", "invalid_key"),
        ("282052A004321", f"{97 - 2820520004321 % 97:02d}", "invalid_key"),
        ("1010372181123", "81", "invalid_key"),
        # temporary numbers (NIA 7/8; 3/4 foreigners being registered): not checkable
        ("7010372181123", "09", "temporary"),
        ("8991299352001", "40", "temporary"),
        ("3650175115001", "32", "temporary"),
    ],
)
def test_statuses(number, key, status):
    facts = parse_nir(number, key, declared_year=2001, award_year=2024)
    assert facts.status == status
    if status != "valid":  # nothing is derived from a NIR that cannot be trusted
        assert facts == NirFacts(status)


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("1 01 03 72 181 123", "18"),  # typed in groups
        ("1.01.03.72.181.123", " 18 "),
        ("1 01 03 72 181 123 18", None),  # the key in the same column
        ("101037218112318", None),
        ("1010372181123", 18),  # a numeric key column
        ("2040697611088", 6),  # ... that lost its leading zero
        ("2040697611088", 6.0),
        ("282052a004321", "52"),  # lower-case Corsica
    ],
)
def test_how_sources_type_them(number, key):
    assert parse_nir(number, key, declared_year=2001, award_year=2024).status == "valid"


@pytest.mark.parametrize(
    ("yy", "declared", "award", "year"),
    [
        (1, 2001, 2024, 2001),
        (1, None, 2023, 2001),  # no declared year: about 20 at the award
        (99, None, 2023, 1999),
        (60, None, 2024, 1960),  # 2060 would be after the award
        (30, None, 2025, 1930),
        (5, 1905, 2024, 1905),  # the declared year decides
        (3, 2002, 2024, 2003),  # a year typed wrong stays visible
        (0, 1999, 2024, 2000),
        (99, 2000, 2024, 1999),
        (26, 2026, 2025, 1926),  # never after the award
        (90, None, None, 1990),  # no award date: about 20 today
        (27, None, None, 1927),  # ... and never after today
    ],
)
def test_century(yy, declared, award, year):
    assert resolve_century(yy, declared, award, today=dt.date(2026, 3, 1)) == year


def test_the_facts_never_hold_the_nir():
    facts = parse_nir("1010372181123", "18", declared_year=2001, award_year=2024)
    text = repr(facts) + str(facts)
    assert "1010372181123" not in text and "181123" not in text


def test_a_failing_batch_names_no_value():
    dates = pa.array([dt.date(2001, 1, 1)], pa.date32())
    with pytest.raises(NirError) as caught:  # two NIRs for one row of dates
        nir_fact_arrays(["1010372181123", "2981144109042"], ["18", "86"], dates, dates)
    assert "1010372181123" not in str(caught.value) and caught.value.__suppress_context__


# ----------------------------------------------------------------------------------
# The batch path (extraction) gives the facts of the reference path, row by row.
# ----------------------------------------------------------------------------------

_places = st.sampled_from(
    ["72181", "2A004", "2B033", "20004", "97411", "98735", "99350", "7518X", "2C004"]
)
_bodies = st.builds(
    lambda s, yy, mm, place, order: f"{s}{yy:02d}{mm}{place}{order:03d}",
    st.sampled_from("0123456789"),
    st.integers(0, 99),
    st.sampled_from(["00", "01", "07", "12", "13", "20", "25", "30", "42", "43", "50", "99"]),
    _places,
    st.integers(0, 999),
)


@st.composite
def _nir_rows(draw):
    body = draw(_bodies)
    kind = draw(st.sampled_from(["right", "wrong", "none", "int", "text", "joined"]))
    right = key_of(body) if body[5:7] not in ("2C",) and body[7:10].isdigit() else 1
    key = {
        "right": f"{right:02d}",
        "wrong": f"{(right % 97) + 1:02d}",
        "none": None,
        "int": right,
        "text": draw(st.text(max_size=3)),
        "joined": None,
    }[kind]
    number = draw(
        st.sampled_from(
            [body, body.lower(), f" {body[:5]} {body[5:]}", "", None, body[:9]]
            + ([f"{body}{right:02d}"] if kind == "joined" else [])
        )
    )
    birth = draw(st.one_of(st.none(), st.dates(dt.date(1920, 1, 1), dt.date(2012, 12, 31))))
    award = draw(st.one_of(st.none(), st.dates(dt.date(2021, 7, 1), dt.date(2026, 12, 31))))
    return number, key, birth, award


@settings(max_examples=300, deadline=None)
@given(st.lists(_nir_rows(), max_size=30))
def test_the_batch_path_equals_the_reference(rows):
    today = dt.date(2026, 3, 1)
    numbers = [r[0] for r in rows]
    keys = [r[1] for r in rows]
    births = pa.array([r[2] for r in rows], pa.date32())
    awards = pa.array([r[3] for r in rows], pa.date32())
    expected = parse_many(
        numbers,
        keys,
        [None if r[2] is None else r[2].year for r in rows],
        [None if r[3] is None else r[3].year for r in rows],
        today,
    )
    text_keys = [None if k is None else str(k) for k in keys]
    for n, k in ((numbers, keys), (pa.array(numbers, pa.string()), pa.array(text_keys))):
        got = nir_fact_arrays(n, k, births, awards, today=today)
        columns = [got[f].to_pylist() for f in FACTS]
        assert [NirFacts(*values) for values in zip(*columns, strict=True)] == expected


def test_a_source_without_nir_gives_absent_facts():
    dates = pa.nulls(3, pa.date32())
    got = nir_fact_arrays(None, None, dates, dates)
    assert got["status"].to_pylist() == ["absent"] * 3
    assert all(got[f].null_count == 3 for f in FACTS[1:])


def test_a_frame_has_its_nir_consumed():
    frame = pd.DataFrame(
        {
            "birth_date": ["2001-03-14", "2001-03-14"],
            "award_date": ["2024-06-20", None],
            "nir_number": ["1010372181123", None],
            "nir_key": ["18", None],
        }
    )
    out = facts_frame(frame)
    assert not set(NIR_SOURCE_COLUMNS) & set(out.columns)
    assert out["nir_status"].tolist() == ["valid", "absent"]
    assert out["nir_birth_commune"].tolist()[0] == "72181"
    assert "1010372181123" not in out.to_csv()


# ----------------------------------------------------------------------------------
# The rules: R13A (BLOCK), R13B and R13C (WARN).
# ----------------------------------------------------------------------------------

# BASE (conftest): a man born 17/05/2001 in Nantes (44109), département 044.
AGREES = {
    "nir_status": "valid",
    "nir_sex": "M",
    "nir_birth_year": 2001,
    "nir_birth_month": "05",
    "nir_birth_department": "44",
    "nir_birth_commune": "44109",
}
ABROAD = {
    "born_in_france": "N",
    "birth_country_code": "350",
    "birth_department_code": None,
    "birth_commune_insee": None,
    "birth_city_label": "RABAT",
}


def nir(**facts):
    return {**AGREES, **facts}


RULE_CASES = [
    # agreement, or nothing that can be compared: no NIR rule
    ("agrees", nir(), set()),
    ("agrees abroad", {**ABROAD, **nir(nir_birth_department="99", nir_birth_commune="99350")},
     set()),
    ("no NIR", {"nir_status": "absent"}, set()),
    ("facts ignored unless valid", nir(nir_status="temporary", nir_sex="F"), set()),
    ("unknown month in the NIR", nir(nir_birth_month=None), set()),
    ("estimated birth date", {**nir(nir_birth_month="01"), "birth_date_is_estimated": "Y"},
     set()),
    ("no declared commune", {**nir(nir_birth_commune="44020"), "birth_commune_insee": None},
     set()),
    ("Corsica, NIR before 1976",
     {**nir(nir_birth_year=1970, nir_birth_department="20", nir_birth_commune="20004"),
      "birth_date": "1970-05-17", "birth_department_code": "02A",
      "birth_commune_insee": "2A004", "birth_city_label": "AJACCIO"}, set()),
    ("Corsica, old source code",
     {**nir(nir_birth_department="2A", nir_birth_commune="2A004"),
      "birth_department_code": "020", "birth_commune_insee": "2A004"}, set()),
    ("Paris city code",
     {**nir(nir_birth_department="75", nir_birth_commune="75115"),
      "birth_department_code": "075", "birth_commune_insee": "75056"}, set()),
    ("Seine before 1968",
     {**nir(nir_birth_year=1965, nir_birth_department="75", nir_birth_commune="75012"),
      "birth_date": "1965-05-17", "birth_department_code": "092",
      "birth_commune_insee": "92012"}, set()),
    ("overseas",
     {**nir(nir_birth_department="974", nir_birth_commune="97411"),
      "birth_department_code": "974", "birth_commune_insee": "97411"}, set()),
    ("overseas, source coding 097",
     {**nir(nir_birth_department="974", nir_birth_commune="97411"),
      "birth_department_code": "097", "birth_commune_insee": "97411"}, set()),
    # disagreement: BLOCK
    ("other sex", nir(nir_sex="F"), {"R13A"}),
    ("other year", nir(nir_birth_year=2000), {"R13A"}),
    ("other month", nir(nir_birth_month="06"), {"R13D"}),
    ("other département", nir(nir_birth_department="72", nir_birth_commune="72181"), {"R13D"}),
    ("other commune", nir(nir_birth_commune="44020"), {"R13D"}),
    ("postal code typed as INSEE code", {**nir(), "birth_commune_insee": "44000"}, {"R13D"}),
    ("NIR born abroad", nir(nir_birth_department="99", nir_birth_commune="99350"), {"R13D"}),
    ("declared abroad, NIR in France", {**ABROAD, **nir()}, {"R13D"}),
    # a birthplace that differs for a possibly historical reason: WARN
    ("country code changed",
     {**ABROAD, **nir(nir_birth_department="99", nir_birth_commune="99352")}, {"R13C"}),
    ("merged commune (same postal code)",
     {**nir(nir_birth_commune="44076"), "birth_commune_insee": "44001"}, {"R13C"}),
    ("Algeria before 1962",
     {**ABROAD, **nir(nir_birth_year=1960, nir_birth_department="91",
                      nir_birth_commune="91352"), "birth_date": "1960-05-17"}, {"R13C"}),
    ("overseas collectivity", {**ABROAD, **nir(nir_birth_department="987",
                                               nir_birth_commune="98735")}, {"R13C"}),
    # a NIR that cannot be used: WARN, never BLOCK by itself
    ("wrong key", {"nir_status": "invalid_key"}, {"R13B"}),
    ("malformed", {"nir_status": "malformed"}, {"R13B"}),
    ("a parent's NIR", nir(nir_sex="F", nir_birth_year=1975, nir_birth_month="02",
                           nir_birth_department="72", nir_birth_commune="72181"), {"R13B"}),
    ("a year 10 years off still blocks", nir(nir_birth_year=1991), {"R13A"}),
]  # fmt: skip
NIR_RULES = {"R13A", "R13B", "R13C", "R13D"}


@pytest.fixture(scope="module")
def rule_results():
    out = evaluate_all(prepare(canonical(*[c[1] for c in RULE_CASES]), today=TODAY))
    return [set(out.columns[out.loc[i]]) & NIR_RULES for i in out.index]


@pytest.mark.parametrize(
    ("i", "expected"),
    [(i, c[2]) for i, c in enumerate(RULE_CASES)],
    ids=[c[0] for c in RULE_CASES],
)
def test_nir_rules(rule_results, i, expected):
    assert rule_results[i] == expected


def test_a_wrong_key_never_blocks_by_itself():
    result = run_gate(canonical({"nir_status": "invalid_key"}), today=TODAY, use_gx=False)
    assert result.verdicts["verdict"].tolist() == ["WARN"]


@pytest.mark.parametrize(
    ("facts", "fix"),
    [
        (
            nir(nir_sex="F", nir_birth_month="03"),
            "le NIR indique : femme, née en 03/2001 dans le 44 ; écart : sexe, mois",
        ),
        (nir(nir_birth_year=2000), "le NIR indique : homme, né en 05/2000 dans le 44 ; écart"),
        (nir(nir_birth_month=None, nir_sex="F"), "femme, née en 2001 dans le 44"),
        (nir(nir_birth_commune="44020"), "dans le 44 (commune 44020) ; écart : lieu"),
        (nir(nir_birth_department="99", nir_birth_commune="99350"), "né en 05/2001 à l'étranger"),
        ({"nir_status": "invalid_key"}, "clé de contrôle du NIR fausse"),
        (nir(nir_birth_year=1970, nir_sex="F"), "NIR d'une autre personne"),
    ],
)
def test_fixes_say_what_the_nir_says_never_the_nir(facts, fix):
    result = run_gate(canonical(facts), today=TODAY, use_gx=False)
    fixes = result.findings["fix"].dropna().tolist()
    assert any(fix in f for f in fixes), fixes


def test_gx_and_direct_paths_agree_on_nir_rules():
    df = canonical(*[c[1] for c in RULE_CASES])
    gx = run_gate(df, today=TODAY)
    direct = run_gate(df, today=TODAY, use_gx=False)
    pd.testing.assert_frame_equal(gx.verdicts, direct.verdicts)
    pd.testing.assert_frame_equal(gx.findings, direct.findings)


# ----------------------------------------------------------------------------------
# The demo: NIRs of the true civil status; extraction keeps none of them.
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cpf_deposit.demo.build import write_demo

    return write_demo(tmp_path_factory.mktemp("nirdemo"), 600, seed=7)


def _demo_nirs(path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT cod_ind, cod_nni_etu, cod_cle_nni_etu FROM individu "
            "WHERE cod_nni_etu IS NOT NULL"
        ).fetchall()


def test_demo_nirs_follow_the_true_civil_status(demo):
    with sqlite3.connect(demo.register) as conn:
        truth = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT cod_ind, sexe, annee, mois, code_lieu_naissance FROM sngi_person "
                "WHERE origin = 'graduate'"
            )
        }
        absent = {
            int(r[0])
            for r in conn.execute(
                "SELECT record_key FROM injected_error WHERE error_type = 'absent_from_register'"
            )
        }
    nirs = _demo_nirs(demo.apogee)
    assert len(nirs) == demo.persons - len(absent)
    kinds = set()
    for cod_ind, body, key in nirs:
        sex, year, month, place = truth[cod_ind]
        facts = parse_nir(body, key, declared_year=year, award_year=2025)
        if place[:2] in ("2A", "2B") and year < 1976:
            place = "20" + place[2:]
        assert (facts.status, facts.sex, facts.birth_year, facts.birth_month) == (
            "valid",
            sex,
            year,
            f"{month:02d}",
        )
        assert facts.birth_commune == place
        kinds.add("abroad" if place[:2] == "99" else "overseas" if place[:2] == "97" else "")
    assert kinds >= {"abroad", "overseas", ""}


@pytest.fixture(scope="module")
def extracted(demo, tmp_path_factory):
    from cpf_deposit.quality.outputs import write_all
    from cpf_deposit.sources.certmap import CertificationMap
    from cpf_deposit.sources.extract import extract

    out = tmp_path_factory.mktemp("nirout")
    logger = logging.getLogger()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_NIR_DEMO", f"sqlite://{demo.apogee}")
            report = extract(
                "apogee", "nir_demo", dt.date(2021, 7, 1), dt.date(2027, 1, 1),
                out / "passages.parquet", id_key=bytes(32),
            )  # fmt: skip
        rows = pd.read_parquet(report.canonical_path)
        result = run_gate(rows, certification_map=CertificationMap.from_csv(demo.mapping))
        write_all(result, out / "gate")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return report, rows, result, out, "\n".join(records)


def test_extraction_derives_the_facts(extracted, demo):
    report, rows, _, _, _ = extracted
    assert report.rows > 300
    assert not set(NIR_SOURCE_COLUMNS) & set(rows.columns)
    assert set(NIR_COLUMN_NAMES) <= set(rows.columns)
    statuses = set(rows["nir_status"])
    assert {"valid", "absent"} <= statuses <= {"valid", "absent"}
    # the facts written are those of the source's NIRs, person by person
    nirs = {str(cod_ind): (body, key) for cod_ind, body, key in _demo_nirs(demo.apogee)}
    for row in rows.head(200).itertuples(index=False):
        body, key = nirs.get(row.source_person_id, (None, None))
        award = None if pd.isna(row.award_date) else pd.Timestamp(row.award_date).year
        declared = None if pd.isna(row.birth_date) else pd.Timestamp(row.birth_date).year
        facts = parse_nir(body, key, declared_year=declared, award_year=award)
        got = tuple(None if pd.isna(getattr(row, c)) else getattr(row, c) for c in NIR_COLUMN_NAMES)
        assert got == tuple(getattr(facts, f) for f in FACTS)


def _values(path) -> str:
    """Every value a file holds, as text (compressed formats decoded)."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return " ".join(table.column_names) + str(table.to_pylist())
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True)
        return str([list(ws.iter_rows(values_only=True)) for ws in wb.worksheets])
    return path.read_text(encoding="utf-8", errors="replace")


def test_no_output_holds_a_nir(extracted, demo):
    _, _, _, out, logs = extracted
    nirs = _demo_nirs(demo.apogee)
    assert len(nirs) > 500
    secrets = {body for _, body, _ in nirs} | {body + key for _, body, key in nirs}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".parquet", ".csv", ".xlsx", ".html"}
    for path in files:
        raw = path.read_bytes()
        text = _values(path)
        for secret in secrets:
            assert secret.encode() not in raw, path.name
            assert secret not in text, path.name
        assert "nir_number" not in text and "nir_key" not in text, path.name
    for secret in secrets:
        assert secret not in logs

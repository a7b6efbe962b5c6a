"""The flux writer: XSD semantics, timestamps, names, splitting, refusals, determinism."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
import tempfile
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from cpf_deposit.flux.reader import iter_flux
from cpf_deposit.flux.writer import (
    Header,
    flux_file_name,
    format_horodatage,
    render_passage,
    write_flux,
)
from cpf_deposit.model import problems
from cpf_deposit.samples import sample_passages
from tests.strategies import passages

PARIS = ZoneInfo("Europe/Paris")
HEADER = Header("01BJD364", "01BJD364", "MCFCER000123", "0720916E")
NS = "{urn:cdc:cpf:pc5:schema:1.0.0}"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
SUMMER_AFTERNOON = dt.datetime(2024, 7, 15, 13, 0, 5, 987654, tzinfo=dt.UTC)  # 15:00:05 Paris


def _ids():
    counter = iter(range(10**6))
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def _write(tmp_path, items, **kw):
    kw.setdefault("moment", SUMMER_AFTERNOON)
    kw.setdefault("id_flux_factory", _ids())
    return write_flux(items, HEADER, tmp_path, tz=PARIS, **kw)


def _strip_source(p):
    return dataclasses.replace(p, source_system=None, source_record_key=None)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Summer afternoon: 24-hour clock and +02:00 (another implementation wrote 03:00+01:00).
        (dt.datetime(2023, 7, 3, 13, 0, 0, tzinfo=dt.UTC), "2023-07-03T15:00:00+02:00"),
        # Winter morning: +01:00.
        (dt.datetime(2023, 1, 9, 7, 5, 9, 999999, tzinfo=dt.UTC), "2023-01-09T08:05:09+01:00"),
        # Last second before the spring change, and the first hour after it.
        (dt.datetime(2024, 3, 31, 0, 59, 59, tzinfo=dt.UTC), "2024-03-31T01:59:59+01:00"),
        (dt.datetime(2024, 3, 31, 1, 0, 0, tzinfo=dt.UTC), "2024-03-31T03:00:00+02:00"),
        # Late evening in summer: 23h, never 11h.
        (dt.datetime(2024, 8, 1, 21, 30, 0, tzinfo=dt.UTC), "2024-08-01T23:30:00+02:00"),
    ],
)
def test_horodatage_uses_the_real_paris_offset_and_a_24_hour_clock(moment, expected):
    assert format_horodatage(moment, PARIS) == expected


def test_horodatage_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="aware"):
        format_horodatage(dt.datetime(2024, 1, 1, 12, 0), PARIS)


def test_sample_passages_give_one_file_valid_against_both_schemas(
    tmp_path, official_schema, project_schema
):
    batch = _write(tmp_path, sample_passages())
    assert batch.refused == []
    [wf] = batch.files
    doc = etree.parse(str(wf.path))
    assert official_schema.validate(doc), official_schema.error_log
    assert project_schema.validate(doc), project_schema.error_log
    assert wf.passages == 5
    assert wf.certifications == {"RNCP24514": 2, "RNCP34034": 2, "RS5875": 1}
    assert doc.getroot().findtext(f"{NS}horodatage") == "2024-07-15T15:00:05+02:00"
    assert wf.path.name == "CPF_0720916E_01BJD364_20240715150005.xml"


def test_written_file_reads_back_to_the_same_passages(tmp_path):
    batch = _write(tmp_path, sample_passages())
    back = [p for _, p in iter_flux(batch.files[0].path)]
    assert back == [_strip_source(p) for p in sample_passages()]


def _passage_element(tmp_path, passage):
    batch = _write(tmp_path, [passage])
    assert batch.refused == [], batch.refused
    doc = etree.parse(str(batch.files[0].path))
    return doc.find(f".//{NS}passageCertification")


BASE = sample_passages()[0]


@pytest.mark.parametrize(
    "element",
    ["dateFinValidite", "scoring", "nomUsage", "moisNaissance", "jourNaissance", "modaliteAcces"],
)
def test_unknown_required_nillable_values_are_written_nil(tmp_path, element):
    p = dataclasses.replace(
        BASE,
        valid_until=None,
        scoring=None,
        usage_name=None,
        birth_month=None,
        birth_day=None,
        access_mode=None,
        mention=None,
    )
    el = _passage_element(tmp_path, p).find(f".//{NS}{element}")
    assert el is not None and el.get(XSI_NIL) == "true" and not el.text


@pytest.mark.parametrize(
    "element",
    [
        "urlPreuve",
        "libelleOption",
        "dateFinExamen",
        "prenom2",
        "prenom3",
        "verbatim",
        "libelleCommuneNaissance",
        "libellePaysNaissance",
        "codePaysNaissance",
        "niveauLangueEuropeen",
        "niveauNumeriqueEuropeen",
        "voieAccessVAE",
        "commentairesMEN",
    ],
)
def test_unknown_optional_values_are_omitted_never_empty(tmp_path, element):
    p = dataclasses.replace(
        BASE, first_name_2=None, birth_city_label=None, exam_start=None, option_label=None
    )
    assert _passage_element(tmp_path, p).find(f".//{NS}{element}") is None


@pytest.mark.parametrize(
    ("insee", "postal", "expect_insee", "expect_postal", "country"),
    [
        ("72181", None, "72181", None, None),  # born in France: INSEE branch, no country code
        ("2A004", None, "2A004", None, None),  # Corsica
        ("99109", None, "99109", None, "109"),  # born abroad: country code is the last 3 digits
        (None, "72000", None, "72000", None),  # only a postal code
        (None, None, None, "nil", None),  # nothing known: postal branch, nil
    ],
)
def test_birthplace_branches_are_exclusive(
    tmp_path, insee, postal, expect_insee, expect_postal, country
):
    p = dataclasses.replace(BASE, birth_insee_code=insee, birth_postal_code=postal)
    el = _passage_element(tmp_path, p)
    got_insee = el.findtext(f".//{NS}codeInseeNaissance/{NS}codeInsee")
    postal_el = el.find(f".//{NS}codePostalNaissance/{NS}codePostal")
    assert got_insee == expect_insee
    if expect_postal is None:
        assert postal_el is None
    elif expect_postal == "nil":
        assert postal_el.get(XSI_NIL) == "true"
    else:
        assert postal_el.text == expect_postal
    assert el.findtext(f".//{NS}codePaysNaissance") == country


def test_presence_flags_follow_the_data(tmp_path):
    el = _passage_element(tmp_path, sample_passages()[2])  # B2 language level, no DigComp
    assert el.findtext(f"{NS}presenceNiveauLangueEuro") == "true"
    assert el.findtext(f"{NS}niveauLangueEuropeen") == "B2"
    assert el.findtext(f"{NS}presenceNiveauNumeriqueEuro") == "false"
    el = _passage_element(tmp_path / "b", sample_passages()[4])  # DigComp
    assert el.findtext(f"{NS}presenceNiveauNumeriqueEuro") == "true"
    assert el.find(f"{NS}niveauNumeriqueEuropeen/{NS}resultats") is not None


def test_values_are_escaped_not_altered(tmp_path):
    label = "Droit & économie <parcours> ]]>"
    el = _passage_element(tmp_path, dataclasses.replace(BASE, option_label=label))
    assert el.findtext(f"{NS}libelleOption") == label


def test_same_passages_id_and_moment_give_byte_identical_files(tmp_path):
    a = _write(tmp_path / "a", sample_passages())
    b = _write(tmp_path / "b", sample_passages())
    assert a.files[0].path.read_bytes() == b.files[0].path.read_bytes()
    assert a.files[0].sha256 == b.files[0].sha256


def test_every_file_gets_a_new_uuid_id_flux_by_default(tmp_path):
    batch = write_flux(
        sample_passages() * 3,
        HEADER,
        tmp_path,
        tz=PARIS,
        moment=SUMMER_AFTERNOON,
        max_passages=4,
    )
    ids = [f.id_flux for f in batch.files]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_split_by_passage_count_keeps_every_file_valid(tmp_path, official_schema):
    items = [
        dataclasses.replace(p, technical_id=f"T{i}-{p.technical_id}")
        for i in range(5)
        for p in sample_passages()
    ]
    batch = _write(tmp_path, items, max_passages=7)
    assert [f.passages for f in batch.files] == [7, 7, 7, 4]
    names = [f.path.name for f in batch.files]
    assert len(set(names)) == 4, "two files written in the same second still get unique names"
    for wf in batch.files:
        assert official_schema.validate(etree.parse(str(wf.path))), official_schema.error_log
    back = [p.technical_id for wf in batch.files for _, p in iter_flux(wf.path)]
    assert back == [p.technical_id for p in items]


def test_split_by_size_never_exceeds_the_limit(tmp_path, official_schema):
    items = [
        dataclasses.replace(p, technical_id=f"T{i}-{p.technical_id}")
        for i in range(40)
        for p in sample_passages()
    ]
    limit = 20_000
    batch = _write(tmp_path, items, max_bytes=limit)
    assert len(batch.files) > 3
    for wf in batch.files:
        assert wf.size == wf.path.stat().st_size <= limit
        assert official_schema.validate(etree.parse(str(wf.path))), official_schema.error_log
    assert sum(f.passages for f in batch.files) == len(items)


def test_a_limit_too_small_for_one_passage_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="cannot hold even one passage"):
        _write(tmp_path, sample_passages(), max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_file_name_stays_unique_against_files_already_in_the_folder(tmp_path):
    local = SUMMER_AFTERNOON.astimezone(PARIS)
    (tmp_path / flux_file_name("0720916E", "01BJD364", local)).write_text("taken")
    batch = _write(tmp_path, sample_passages())
    assert batch.files[0].path.name == "CPF_0720916E_01BJD364_20240715150006.xml"


def test_files_are_private(tmp_path):
    batch = _write(tmp_path, sample_passages())
    assert stat.S_IMODE(batch.files[0].path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"birth_name": "X" * 61}, "birth_name", "too_long"),
        ({"first_name_1": ""}, "first_name_1", "too_short"),
        ({"first_name_2": "Ann\x00e"}, "first_name_2", "forbidden_char"),
        ({"birth_name": "DU\x0bPONT"}, "birth_name", "forbidden_char"),
        ({"birth_city_label": "NANTES\ufffe"}, "birth_city_label", "forbidden_char"),
        ({"sex": "H"}, "sex", "not_allowed"),
        ({"sex": None}, "sex", "missing"),
        ({"birth_insee_code": "7218"}, "birth_insee_code", "bad_length"),
        ({"birth_month": 13}, "birth_month", "out_of_range"),
        ({"birth_year": 1899}, "birth_year", "out_of_range"),
        ({"award_date": None}, "award_date", "missing"),
        ({"award_date": dt.date(1899, 12, 31)}, "award_date", "out_of_range"),
        ({"mention": "TRES_BIEN"}, "mention", "not_allowed"),
        ({"access_mode": "EQUIVALENCE_(DIPLOME_ETRANGER)"}, "access_mode", "not_allowed"),
        ({"birth_postal_code": "72000"}, "birth_postal_code", "conflict"),
        ({"cpf_holder_name": "DUPONT"}, "cpf_holder_name", "conflict"),
        ({"is_final": "yes"}, "is_final", "bad_type"),
    ],
)
def test_unwritable_passage_is_refused_by_field_and_the_rest_written(tmp_path, change, field, code):
    bad = dataclasses.replace(sample_passages()[1], **change)
    items = [sample_passages()[0], bad, sample_passages()[3]]
    batch = _write(tmp_path, items)
    assert [r.technical_id for r in batch.refused] == ["DEMO-0002"]
    found = batch.refused[0].problems
    assert (field, code) in [(p.field, p.code) for p in found]
    assert batch.files[0].passages == 2
    text = str(batch.refused[0])
    assert "DEMO-0002" in text and field in text
    for personal in ("N'DIAYE", "Aïssatou"):
        assert personal not in text, "refusal messages carry no personal value"


def test_long_names_are_never_truncated(tmp_path):
    long_name = "DE LA " + "ROCHEFOUCAULD-" * 4 + "DOUDEAUVILLE"
    assert len(long_name) > 60
    batch = _write(tmp_path, [dataclasses.replace(BASE, birth_name=long_name)])
    assert batch.files == [] and len(batch.refused) == 1
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_file_leaves_no_partial_file(tmp_path):
    def exploding():
        yield from sample_passages()[:2]
        raise RuntimeError("source connection lost")

    with pytest.raises(RuntimeError):
        _write(tmp_path, exploding())
    assert list(tmp_path.iterdir()) == []


def test_unsorted_certifications_still_give_a_valid_file(tmp_path, official_schema):
    s = sample_passages()
    batch = _write(tmp_path, [s[0], s[2], s[1], s[3]])
    doc = etree.parse(str(batch.files[0].path))
    assert official_schema.validate(doc)
    codes = [c.findtext(f"{NS}code") for c in doc.iter(f"{NS}certification")]
    assert codes == ["RNCP24514", "RNCP34034", "RNCP24514", "RNCP34034"]


def test_one_passage_per_line(tmp_path):
    batch = _write(tmp_path, sample_passages())
    lines = batch.files[0].path.read_text(encoding="utf-8").splitlines()
    passage_lines = [ln for ln in lines if "<cpf:passageCertification>" in ln]
    assert len(passage_lines) == 5
    assert all(ln.endswith("</cpf:passageCertification>") for ln in passage_lines)
    assert render_passage(BASE).count("\n") == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(passages(valid_only=False))
def test_any_passage_the_model_accepts_is_valid_and_round_trips(official_schema, passage):
    with tempfile.TemporaryDirectory() as d:
        batch = write_flux(
            [passage],
            HEADER,
            Path(d),
            tz=PARIS,
            moment=SUMMER_AFTERNOON,
            id_flux_factory=lambda: "id",
        )
        if problems(passage):
            assert batch.files == [] and len(batch.refused) == 1
            assert os.listdir(d) == []
            return
        assert batch.refused == []
        path = batch.files[0].path
        doc = etree.parse(str(path))
        assert official_schema.validate(doc), (official_schema.error_log, passage)
        [(_, back)] = list(iter_flux(path))
        assert back == _strip_source(passage)


@settings(max_examples=200, deadline=None)
@given(passages(valid_only=True))
def test_generated_valid_passages_are_all_accepted(passage):
    assert problems(passage) == []


def test_a_second_passage_with_the_same_technical_id_is_refused(tmp_path, official_schema):
    s = sample_passages()
    dup = dataclasses.replace(s[2], technical_id=s[0].technical_id)  # other certification
    batch = _write(tmp_path, [s[0], dup, s[1]])
    assert [(r.technical_id, r.problems[0].code) for r in batch.refused] == [
        ("DEMO-0001", "conflict")
    ]
    assert batch.files[0].passages == 2
    doc = etree.parse(str(batch.files[0].path))
    assert official_schema.validate(doc), "no empty certification block is left behind"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"valid_until": dt.date(2023, 7, 3)}, "valid_until"),  # before the award (2023-07-04)
        ({"exam_start": dt.date(2023, 6, 27), "exam_end": dt.date(2023, 6, 26)}, "exam_end"),
    ],
)
def test_dates_the_cdc_would_reject_are_refused(tmp_path, change, field):
    batch = _write(tmp_path, [dataclasses.replace(BASE, **change)])
    [refusal] = batch.refused
    assert [(p.field, p.code) for p in refusal.problems] == [(field, "conflict")]


def test_equal_dates_are_fine(tmp_path):
    p = dataclasses.replace(BASE, valid_until=BASE.award_date, exam_end=BASE.exam_start)
    assert _write(tmp_path, [p]).refused == []

"""Birthplace resolution, certification mapping, honours and technical ids on real cases."""

from __future__ import annotations

import datetime as dt

import pytest

from cpf_deposit.ledger.ids import make_technical_id
from cpf_deposit.model import problems
from cpf_deposit.sources.birthplace import BirthplaceResolver, normalise_label
from cpf_deposit.sources.canonical import COLUMN_NAMES
from cpf_deposit.sources.certmap import CertificationMap
from cpf_deposit.sources.mapping import RowMapper

RESOLVER = BirthplaceResolver()


@pytest.mark.parametrize(
    ("born", "dep", "commune", "city", "country", "code", "issue"),
    [
        ("Y", "057", "57463", "METZ", None, "57463", None),
        ("Y", "072", None, "LE MANS", None, "72181", None),
        ("Y", "042", None, "St-Étienne", None, "42218", None),
        ("Y", "075", None, "PARIS 14EME", None, "75114", None),
        ("Y", "075", None, "Paris", None, None, "birthplace_ambiguous"),
        ("Y", "013", None, "MARSEILLE", None, None, "birthplace_ambiguous"),
        ("Y", "069", None, "LYON 3E", None, "69383", None),
        ("Y", "02A", None, "AJACCIO", None, "2A004", None),
        ("Y", "020", None, "BASTIA", None, "2B033", None),  # pre-1976 Corsica code
        ("Y", "971", None, "BASSE TERRE", None, "97105", None),
        ("Y", "974", "97411", "ST DENIS", None, "97411", None),
        ("Y", "016", None, "BORS", None, None, "birthplace_ambiguous"),  # two homonyms
        ("Y", "075", "75014", "PARIS 14E", None, "75114", "birth_commune_code_unknown"),
        ("Y", "072", None, "NULLE-PART-SUR-SARTHE", None, None, "birthplace_not_found"),
        ("Y", "072", None, None, None, None, "birthplace_missing"),
        ("N", None, None, "CASABLANCA", "350", "99350", None),
        ("N", None, None, "ALGER", "352", "99352", None),
        ("N", None, None, "X", "999", None, "birth_country_unknown"),
        ("N", None, None, "X", "100", None, "birth_country_conflict"),
        ("N", None, None, "X", None, None, "birth_country_missing"),
        (None, "072", None, "LE MANS", None, None, "birthplace_origin_unknown"),
    ],
)
def test_birthplace(born, dep, commune, city, country, code, issue):
    place = RESOLVER.resolve(born, dep, commune, city, country, None)
    assert (place.insee_code, place.issue) == (code, issue)
    if issue:
        assert place.message and (city is None or city not in place.message)


@pytest.mark.parametrize(
    ("label", "key"),
    [
        ("Saint-Étienne", "SAINT ETIENNE"),
        ("ST  ETIENNE", "SAINT ETIENNE"),
        ("L'Haÿ-les-Roses", "L HAY LES ROSES"),
        ("CŒUVRES-ET-VALSERY", "COEUVRES ET VALSERY"),
        ("Ste Foy", "SAINTE FOY"),
    ],
)
def test_normalise_label(label, key):
    assert normalise_label(label) == key


def test_certification_map_years_and_prefixes():
    m = CertificationMap(
        [
            {
                "cod_dip": "LDROIT",
                "cod_vrs_vdi": 1,
                "daa_deb": "2016",
                "daa_fin": "2023",
                "certif_type": "RNCP",
                "certif_code": "RNCP24438",
            },
            {
                "cod_dip": "LDROIT",
                "cod_vrs_vdi": 1,
                "daa_deb": "2024",
                "daa_fin": None,
                "certif_type": "rncp",
                "certif_code": "RNCP39869",
            },
            {
                "diploma_code": "CLES",
                "diploma_version": "",
                "certification_type": "RS",
                "certification_code": "rs5875",
            },
        ]
    )
    assert m.lookup("LDROIT", "1", 2023).certification_code == "RNCP24438"
    assert m.lookup("LDROIT", "1", 2024).certification_code == "RNCP39869"
    assert m.lookup("LDROIT", "1", 2015) is None
    assert m.lookup("LDROIT", "2", 2020) is None
    assert m.lookup("CLES", None, 2022).certification_code == "RS5875"


# Malformed lines no longer refuse the whole mapping: tests/sources/test_certmap_lines.py.


ID_KEY = bytes(range(32))


def mapper() -> RowMapper:
    return RowMapper(COLUMN_NAMES, None, id_key=ID_KEY)


def canonical(**values):
    base = dict.fromkeys(COLUMN_NAMES)
    base.update(
        source_system="APOGEE",
        source_record_key="7-LINFO-1",
        birth_name="N'DIAYE",
        first_name_1="AÏSSATOU",
        sex="F",
        birth_date=dt.datetime(1999, 11, 30),
        birth_date_is_estimated="N",
        born_in_france="Y",
        birth_department_code="072",
        birth_commune_insee="72181",
        certification_type="RNCP",
        certification_code="24514",
        award_date="2023-07-04 00:00:00",
        academic_year=2022,
    )
    base.update(values)
    return tuple(base[c] for c in COLUMN_NAMES)


@pytest.mark.parametrize(
    ("code", "label", "expected"),
    [
        ("P", "Passable", "SANS_MENTION"),
        ("AB", "Assez bien", "MENTION_ASSEZ_BIEN"),
        ("B", None, "MENTION_BIEN"),
        ("TB", None, "MENTION_TRES_BIEN"),
        (
            "TF",
            "Très bien avec félicitations du jury",
            "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY",
        ),
        ("Q9", "Assez Bien", "MENTION_ASSEZ_BIEN"),
        ("HO", "Honorable", None),
        (None, None, None),
    ],
)
def test_mention_mapping(code, label, expected):
    passage, issues = mapper().map_row(canonical(mention_code=code, mention_label=label))
    assert passage.mention == expected
    assert [i.code for i in issues] == (["mention_unmapped"] if code == "HO" else [])


def test_mention_and_access_maps_are_configurable():
    configured = RowMapper(
        COLUMN_NAMES,
        None,
        mention_map={"HO": "SANS_MENTION"},
        access_map={"4": "FORMATION_INITIALE_APPRENTISSAGE"},
        id_key=ID_KEY,
    )
    p, issues = configured.map_row(canonical(mention_code="HO", access_mode_code="4"))
    assert (p.mention, p.access_mode, issues) == (
        "SANS_MENTION",
        "FORMATION_INITIALE_APPRENTISSAGE",
        [],
    )
    p, issues = configured.map_row(canonical(access_mode_code="9"))
    assert p.access_mode is None and issues[0].code == "access_mode_unmapped"
    with pytest.raises(ValueError, match="mention_map"):
        RowMapper(COLUMN_NAMES, None, mention_map={"X": "BIEN"}, id_key=ID_KEY)


def test_a_mapped_row_is_a_writable_passage():
    p, issues = mapper().map_row(canonical())
    assert issues == [] and problems(p) == []
    assert (p.certification_code, p.award_date, p.birth_day) == (
        "RNCP24514",
        dt.date(2023, 7, 4),
        30,
    )


def test_an_estimated_birth_date_sends_the_year_only():
    p, issues = mapper().map_row(canonical(birth_date_is_estimated="Y"))
    assert (p.birth_year, p.birth_month, p.birth_day) == (1999, None, None)
    assert [i.code for i in issues] == ["birth_date_estimated"]


def test_a_passage_leaves_extraction_with_its_ledger_idtechnique():
    row = canonical()
    p, _ = mapper().map_row(row)
    key = row[COLUMN_NAMES.index("source_record_key")]
    assert p.technical_id == make_technical_id(ID_KEY, "APOGEE", key, "RNCP", "RNCP24514")
    assert key not in p.technical_id


def test_a_row_without_certification_has_no_idtechnique():
    no_cert = canonical(certification_code=None, award_date="2023-13-45")
    p, issues = mapper().map_row(no_cert)
    assert p is None and [i.code for i in issues] == ["award_date_invalid"]
    assert issues[0].technical_id is None

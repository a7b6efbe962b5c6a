"""Each rule on real-looking cases: fires where it should, stays silent otherwise."""

from __future__ import annotations

import pytest

from cpf_deposit.quality.gate import run_gate
from cpf_deposit.quality.prepare import prepare
from cpf_deposit.quality.rules import BLOCK, NOTE, RULE_BY_ID, RULES, WARN, evaluate_all
from tests.quality.conftest import TODAY, canonical

# The NIR facts of BASE's person, as the extraction derives them (tests/quality/test_nir.py).
NIR = {
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
    "birth_commune_insee": None,
    "birth_department_code": None,
    "birth_city_label": "RABAT",
}

CASES = [
    # (case, overrides, rule that must fire)
    ("inverted", {"birth_name": "PIERRE", "first_name_1": "DUPONT"}, "R01"),
    ("inverted woman", {"birth_name": "NATHALIE", "first_name_1": "LEFEBVRE", "sex": "F"}, "R01"),
    ("Mohamed as F", {"first_name_1": "MOHAMED", "sex": "F"}, "R02A"),
    ("Marie-Claire as M", {"first_name_1": "MARIE-CLAIRE", "sex": "M"}, "R02A"),
    ("Jean-Baptiste as F (<50 F births)", {"first_name_1": "JEAN-BAPTISTE", "sex": "F"}, "R02B"),
    ("Claude as F", {"first_name_1": "CLAUDE", "sex": "F"}, "R02B"),
    ("Camille as M", {"first_name_1": "CAMILLE", "sex": "M"}, "R02B"),
    ("two first names", {"first_name_1": "JEAN-PIERRE MARIE", "first_name_2": None}, "R03A"),
    ("three first names", {"first_name_1": "LUCAS HUGO THEO"}, "R03A"),
    ("merged compound-looking", {"first_name_1": "JEAN PIERRE", "first_name_2": None}, "R03A"),
    (
        "compound no hyphen",
        {"first_name_1": "MARIE CLAIRE", "first_name_2": "ANNE", "sex": "F"},
        "R04A",
    ),
    ("double hyphen 1990", {"birth_name": "MARTIN--DURAND", "birth_date": "1990-02-02"}, "R04C"),
    ("double name 2006", {"birth_name": "MARTIN-DURAND", "birth_date": "2006-02-02"}, "R04D"),
    ("digit", {"birth_name": "DUP0NT"}, "R05A"),
    ("cyrillic", {"first_name_1": "Владимир"}, "R05A"),
    ("trailing space", {"birth_name": "DUPONT "}, "R05B"),
    ("double space", {"first_name_1": "JEAN  PIERRE"}, "R05B"),
    ("typographic apostrophe", {"birth_name": "D’ALEMBERT"}, "R05C"),
    ("ligature", {"first_name_1": "LÆTITIA", "sex": "F"}, "R05C"),
    ("punctuation variant", {"birth_name": "LE-PIPEC"}, "R05D"),
    ("usage equals birth", {"sex": "F", "first_name_1": "MARIE", "usage_name": "DUPONT"}, "R06"),
    ("estimated date", {"birth_date_is_estimated": "Y"}, "R07A"),
    (
        "default date abroad",
        {
            "born_in_france": "N",
            "birth_country_code": "350",
            "birth_date": "2000-01-01",
            "birth_commune_insee": None,
        },
        "R07B",
    ),
    ("prenom3 without 2", {"first_name_2": None, "first_name_3": "LOUIS"}, "R07C"),
    ("postal as INSEE", {"birth_commune_insee": "44000"}, "R08A"),
    ("department mismatch", {"birth_department_code": "075"}, "R08B"),
    ("abroad no country", {"born_in_france": "N", "birth_country_code": None}, "R08C"),
    ("abroad as France", {"born_in_france": "N", "birth_country_code": "100"}, "R08C"),
    ("country unknown", {"born_in_france": "N", "birth_country_code": "999"}, "R08D"),
    ("no birthplace", {"birth_commune_insee": None, "birth_city_label": None}, "R08E"),
    ("origin unknown", {"born_in_france": None}, "R08E"),
    ("age 12", {"birth_date": "2014-01-01"}, "R09A"),
    ("born 1890", {"birth_date": "1890-01-01"}, "R09B"),
    ("award 2021-06", {"award_date": "2021-06-30"}, "R09C"),
    ("award future", {"award_date": "2026-04-01"}, "R09D"),
    ("award late", {"award_date": "2025-09-01"}, "R09E"),
    ("award missing", {"award_date": None}, "R09F"),
    ("code shape", {"certification_code": "RNCP35959B"}, "R10A"),
    ("type mismatch", {"certification_type": "RS", "certification_code": "RNCP35959"}, "R10B"),
    ("unknown type", {"certification_type": "CQP", "certification_code": "CQP12"}, "R10B"),
    ("unmapped", {"certification_type": None, "certification_code": None}, "R10C"),
    ("too long", {"birth_name": "A" * 61}, "R12"),
    ("tab", {"first_name_2": "LOUIS\tMARIE"}, "R05B"),
    ("control character", {"first_name_2": "LOUIS\x01MARIE"}, "R12"),
    ("sex missing", {"sex": None}, "R12"),
    ("sex X", {"sex": "X"}, "R12"),
    ("birth date missing", {"birth_date": None}, "R12"),
    ("NIR of the other sex", {**NIR, "nir_sex": "F"}, "R13A"),
    ("NIR of another birth month", {**NIR, "nir_birth_month": "11"}, "R13D"),
    ("NIR key wrong", {"nir_status": "invalid_key"}, "R13B"),
    (
        "NIR country code changed",
        {**NIR, **ABROAD, "nir_birth_department": "99", "nir_birth_commune": "99352"},
        "R13C",
    ),
]

CLEAN = [
    ("plain", {}),
    ("civil compound", {"first_name_1": "JEAN-PIERRE"}),
    ("civil compound F", {"first_name_1": "MARIE-CLAIRE", "sex": "F"}),
    ("particle surname", {"birth_name": "LE GOFF"}),
    ("apostrophe surname", {"birth_name": "N'DIAYE"}),
    ("double hyphen 2007", {"birth_name": "MARTIN--DURAND", "birth_date": "2007-03-03"}),
    ("Dominique as M", {"first_name_1": "DOMINIQUE"}),
    ("Camille as F", {"first_name_1": "CAMILLE", "sex": "F"}),
    ("accented", {"first_name_1": "JÉRÔME", "birth_name": "LEFÈVRE"}),
    (
        "abroad",
        {
            "born_in_france": "N",
            "birth_country_code": "350",
            "birth_commune_insee": None,
            "birth_department_code": None,
            "birth_city_label": "RABAT",
        },
    ),
    ("bare RS number", {"certification_type": "RS", "certification_code": "5875"}),
    ("Corsica", {"birth_department_code": "02A", "birth_commune_insee": "2A004"}),
    ("old Corsica code", {"birth_department_code": "020", "birth_commune_insee": "2A004"}),
    ("Paris city code", {"birth_department_code": "075", "birth_commune_insee": "75056"}),
    ("NIR agrees", NIR),
    (
        "NIR abroad agrees",
        {**NIR, **ABROAD, "nir_birth_department": "99", "nir_birth_commune": "99350"},
    ),
    ("NIR temporary", {"nir_status": "temporary"}),
]


def fired(df):
    out = evaluate_all(prepare(df, today=TODAY))
    return [set(out.columns[out.loc[i]]) for i in out.index]


BATCH_RULES = {"R11A", "R11B"}  # duplicates: the batched cases share one identity


@pytest.fixture(scope="module")
def batched():
    """Every case in one frame (one preparation), rules of duplicates left aside."""
    rows = [o for _, o, _ in CASES] + [o for _, o in CLEAN]
    return [f - BATCH_RULES for f in fired(canonical(*rows))]


@pytest.mark.parametrize(
    ("i", "case", "overrides", "rule"),
    [(i, *c) for i, c in enumerate(CASES)],
    ids=[c[0] for c in CASES],
)
def test_rule_fires(batched, i, case, overrides, rule):
    assert rule in batched[i]


@pytest.mark.parametrize(
    ("i", "case", "overrides"),
    [(len(CASES) + i, *c) for i, c in enumerate(CLEAN)],
    ids=[c[0] for c in CLEAN],
)
def test_clean_rows_pass(batched, i, case, overrides):
    assert batched[i] == set()


def test_batched_evaluation_matches_single_rows():
    for _, overrides, _ in CASES[::9]:
        single = fired(canonical(overrides))[0] - BATCH_RULES
        assert single == fired(canonical(overrides, {"birth_name": "ZZZ"}))[0] - BATCH_RULES


def test_duplicates():
    df = canonical({}, {}, {"source_person_id": "9"}, {"birth_name": "DURAND"})
    df.loc[1, "source_person_id"] = "1"  # the same person and certification twice
    result = fired(df)
    assert "R11A" in result[1] and "R11A" not in result[0]
    assert "R11A" in result[2]  # same civil identity under id 9: one holder for the CDC
    assert "R11B" in result[2] and "R11B" in result[0]  # same identity, ids 1 and 9
    assert "R11A" not in result[3] and "R11B" not in result[3]


@pytest.mark.parametrize(
    ("rows", "twins"),
    [
        # two source ids, one civil identity, one certification: the later award waits
        (
            [{"award_date": "2026-01-20"}, {"award_date": "2025-12-01"}],
            [("1-LDROIT-1", "2-LDROIT-1")],
        ),
        # the same identity with another certification is another passage
        ([{}, {"certification_code": "RNCP40000"}], []),
        # spelled alike for the CDC (case, accents): the same holder
        ([{"birth_name": "Lefèvre"}, {"birth_name": "LEFEVRE"}], [("2-LDROIT-1", "1-LDROIT-1")]),
        # another birth date: another person
        ([{}, {"birth_date": "2001-05-18"}], []),
        # linked through the source id, then through the identity: one person
        (
            [
                {"source_person_id": "7"},
                {"source_person_id": "7", "birth_name": "DUPOND"},
                {"source_person_id": "8", "birth_name": "DUPOND"},
            ],
            [("2-LDROIT-1", "1-LDROIT-1"), ("3-LDROIT-1", "1-LDROIT-1")],
        ),
    ],
    ids=["two-ids", "other-certification", "accents", "other-birth-date", "transitive"],
)
def test_duplicate_awards_name_the_kept_passage(rows, twins):
    from cpf_deposit.quality.rules import RULE_BY_ID

    frame = prepare(canonical(*rows), today=TODAY)
    rule = RULE_BY_ID["R11A"]
    fired_rows = frame[rule.evaluate(frame)]
    found = sorted(zip(fired_rows["source_record_key"], fired_rows["q_twin_key"], strict=True))
    assert found == sorted(twins)
    for fix, (_, kept) in zip(rule.fixes(fired_rows), sorted(found), strict=True):
        assert kept in fix


def test_every_rule_is_exercised():
    # R10D needs a certification map with a bad line: tests/sources/test_certmap_lines.py
    others = {"R01B", "R04B", "R03B", "R11A", "R11B", "R10D"}
    assert {r for _, _, r in CASES} | others >= set(RULE_BY_ID)


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        ({"birth_name": "PIERRE", "first_name_1": "DUPONT"}, "nom de naissance : DUPONT"),
        (
            {"first_name_1": "JEAN-PIERRE MARIE", "first_name_2": None},
            "prénom 1 : JEAN-PIERRE ; prénom 2 : MARIE",
        ),
        (
            {"first_name_1": "MARIE CLAIRE", "first_name_2": "ANNE", "sex": "F"},
            "prénom 1 : MARIE-CLAIRE",
        ),
        ({"first_name_1": "MOHAMED", "sex": "F"}, "sexe : M"),
        ({"birth_commune_insee": "44000"}, "code INSEE 44109"),
        ({"birth_name": "LE-PIPEC"}, "nom de naissance : LE PIPEC"),
        ({"birth_name": "MARTIN-DURAND", "birth_date": "2006-02-02"}, "MARTIN--DURAND"),
        ({"birth_name": "DUPONT  "}, "nom de naissance : DUPONT"),
        ({"certification_code": "RNCP 35959"}, "code : RNCP35959"),
    ],
)
def test_suggested_fixes(overrides, fix):
    result = run_gate(canonical(overrides), today=TODAY, use_gx=False)
    assert any(fix in f for f in result.findings["fix"].dropna()), result.findings


def test_verdicts_follow_severity():
    result = run_gate(
        canonical(
            {}, {"first_name_1": "CLAUDE", "sex": "F"}, {"first_name_1": "MOHAMED", "sex": "F"}
        ),
        today=TODAY,
        use_gx=False,
    )
    v = result.verdicts
    assert v["verdict"].tolist() == ["OK", "WARN", "BLOCK"]
    assert v["rule_ids"].tolist()[2] == "R02A"
    assert v["source_record_key"].tolist() == ["1-LDROIT-1", "2-LDROIT-1", "3-LDROIT-1"]


def test_rules_read_only_their_columns():
    frame = prepare(canonical({}), today=TODAY)
    for rule in RULES:
        rule.evaluate(frame[list(rule.columns)])  # a KeyError would mean an undeclared column


def test_messages_are_french_and_severities_known():
    for rule in RULES:
        assert rule.severity in (BLOCK, WARN, NOTE)
        assert (rule.message.endswith(".") and " : " in rule.message) or "." in rule.message


def test_late_transmission_is_a_note_not_a_verdict(tmp_path):
    from cpf_deposit.quality.gate import run_gate
    from cpf_deposit.quality.outputs import quarantine_table

    late = {"award_date": "2025-09-01"}  # more than three months before TODAY
    result = run_gate(canonical(late, {"birth_name": "DURAND", **late}), today=TODAY, use_gx=False)
    assert result.verdicts["verdict"].tolist() == ["OK", "OK"]
    assert result.verdicts["notes"].tolist() == ["R09E", "R09E"]
    assert result.verdicts["rule_ids"].tolist() == ["", ""]
    assert quarantine_table(result).empty  # nothing for the office to act on

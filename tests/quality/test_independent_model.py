"""The independent error model, the CDC stand-in and the independent score: behaviour.

Small populations keep these fast: the rates are checked on a few thousand persons
without a database, the whole chain (database, real extraction, real gate) once on a
few hundred graduates.
"""

from __future__ import annotations

import math
import re
import sqlite3

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpf_deposit.demo.independent import (
    KINDS,
    NONE,
    TRUTH_TABLE,
    apply_errors,
    draw_clean,
    fold,
    read_truth,
)
from cpf_deposit.demo.sngi_standin import (
    ACCEPTED,
    MSG_PRENOMS,
    MSG_SEVERAL,
    MSG_STAGE1,
    MSG_STAGE2,
    REJECTED,
    Policy,
    SngiStandIn,
)
from cpf_deposit.quality.independent_score import evaluate_independent, format_independent

RATE_PERSONS = 3000


@pytest.fixture(scope="module")
def clean():
    return draw_clean(RATE_PERSONS, 7)


@pytest.fixture(scope="module")
def perturbed(clean):
    return apply_errors(clean, 7)


# -- the error model ------------------------------------------------------------------


def test_same_seed_same_errors_other_seed_other_errors(clean, perturbed):
    again = apply_errors(clean, 7)
    pd.testing.assert_frame_equal(perturbed.truth, again.truth)
    for column, values in perturbed.ind.items():
        assert list(values) == list(again.ind[column]), column
    other = apply_errors(clean, 8)
    assert not perturbed.truth["kind"].equals(other.truth["kind"])


def test_clean_population_is_deterministic():
    a, b = draw_clean(60, 3), draw_clean(60, 3)
    for column, values in a.ind.items():
        assert list(values) == list(b.ind[column]), column
    assert a.results == b.results


def test_every_kind_at_its_rate(clean, perturbed):
    n = len(clean)
    originals = perturbed.truth[perturbed.truth["role"] == "original"]
    counts = originals["kind"].value_counts()
    for name, kind in KINDS.items():
        wanted, given, pool = perturbed.allocation[name]
        assert given == wanted, f"{name}: pool of {pool} too small"
        expected = kind.rate * n
        assert abs(given - expected) <= 4 * math.sqrt(expected) + 2, name
        assert counts.get(name, 0) == given, name
    assert counts[NONE] == n - sum(g for _, g, _ in perturbed.allocation.values())


def test_rates_can_be_overridden(clean):
    p = apply_errors(clean, 7, rates={"typo": 0.0, "name_inverted": 0.05})
    kinds = p.truth["kind"]
    assert (kinds == "typo").sum() == 0
    assert abs((kinds == "name_inverted").sum() - 0.05 * len(clean)) < 40


_NO_SOURCE_CHANGE = {"absent_from_sngi", "sngi_duplicate", "duplicate_person"}


def test_every_source_kind_alters_the_source_row(clean, perturbed):
    columns = [c for c in clean.ind if c not in ("cod_nni_etu", "cod_cle_nni_etu")]
    truth = perturbed.truth
    for name in KINDS:
        if name in _NO_SOURCE_CHANGE:
            continue
        persons = truth.loc[(truth["kind"] == name) & (truth["role"] == "original"), "person_id"]
        for i in persons:
            assert any(clean.ind[c][i] != perturbed.ind[c][i] for c in columns), name


def test_name_errors_change_the_cdc_comparison_and_tolerated_ones_do_not(clean, perturbed):
    originals = perturbed.truth[perturbed.truth["role"] == "original"]
    truth = originals.set_index("person_id")
    first_is_usage = perturbed.ind["tem_pr_usage"] == "O"
    for i in range(len(clean)):
        kind = truth.loc[i, "kind"]
        name_now = fold(perturbed.ind["lib_nom_pat_ind"][i]).strip()
        first_now = fold(
            perturbed.ind["lib_pr_eta_civ"][i]
            if first_is_usage[i]
            else perturbed.ind["lib_pr1_ind"][i]
        ).strip()
        same = name_now == fold(clean.ind["lib_nom_pat_ind"][i]) and first_now == fold(
            clean.ind["lib_pr1_ind"][i]
        )
        if kind in ("name_inverted", "typo", "transliteration", "first_names_merged"):
            assert not same, kind
        if kind in ("accents_case", "usage_first_name", "usage_name_copy", NONE):
            assert same, kind


def test_duplicated_persons_get_a_second_record_with_results(clean, perturbed):
    truth = perturbed.truth
    copies = truth[truth["role"] == "copy"]
    assert len(copies) == perturbed.allocation["duplicate_person"][1] > 0
    assert set(copies["kind"]) == {"duplicate_person"}
    result_owners = {r[0] for r in perturbed.results}
    assert set(copies["cod_ind"]) <= result_owners
    assert truth["cod_ind"].is_unique


def test_nir_is_absent_for_holders_without_nir(perturbed):
    truth = perturbed.truth.set_index("cod_ind")
    for cod_ind, number in zip(perturbed.ind["cod_ind"], perturbed.ind["cod_nni_etu"], strict=True):
        row = truth.loc[cod_ind]
        if not row["in_register"]:
            assert number is None or number[0] in "78"
        if row["nir_state"] == "absent":
            assert number is None


def test_truth_stays_out_of_what_the_extraction_reads(tmp_path):
    from cpf_deposit.demo.apogee import TABLE_COLUMNS
    from cpf_deposit.demo.independent import write_independent

    files = write_independent(tmp_path, 80, 4)
    with sqlite3.connect(files.apogee) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == set(TABLE_COLUMNS)
        for table in tables:
            cols = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert cols == set(TABLE_COLUMNS[table])
    with sqlite3.connect(files.truth) as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} == {TRUTH_TABLE}
    assert oct(files.truth.stat().st_mode & 0o777) == "0o600"
    truth = read_truth(files.truth)
    assert len(truth) == files.records


# -- the CDC stand-in -----------------------------------------------------------------


def _truth(*people: dict) -> pd.DataFrame:
    base = {
        "role": "original", "in_register": True, "sngi_duplicate": False,
        "true_birth_name": "LE GOFF", "true_first_name_1": "JEAN-PIERRE",
        "true_first_name_2": "LUC", "true_first_name_3": None, "true_sex": "M",
        "true_birth_date": "2001-05-17", "true_birth_code": "44109",
        "surname_p": 1e-4, "first_name_p": 1e-3,
    }  # fmt: skip
    rows = [{**base, "person_id": i, "cod_ind": 1000 + i, **p} for i, p in enumerate(people)]
    return pd.DataFrame(rows)


ALONE = Policy(homonym_share=0.0)
TRUE = dict(nom="LE GOFF", prenom1="JEAN-PIERRE", sexe="M", annee=2001, mois=5, jour=17)


def test_standin_accepts_the_true_civil_status():
    s = SngiStandIn(_truth({}), 1, ALONE)
    assert s.match(**TRUE, commune="44109", prenom2="LUC") == (ACCEPTED, 0, None, 0)


@pytest.mark.parametrize(
    "change",
    [
        dict(nom="JEAN-PIERRE", prenom1="LE GOFF"),  # inverted
        dict(sexe="F"),
        dict(annee=2002),
        dict(prenom1="JEAN PIERRE"),  # hyphen of a compound first name (guide V3)
        dict(prenom1="JEAN-PIERRE LUC"),  # two first names in one field
        dict(nom="LE-GOFF"),  # birth-name punctuation, strict today
        dict(nom="DUPONT"),  # usage name sent as birth name
    ],
)
def test_standin_rejects_stage_one_errors(change):
    s = SngiStandIn(_truth({}), 1, ALONE)
    outcome, stage, message, _ = s.match(**{**TRUE, **change})
    assert (outcome, stage, message) == (REJECTED, 1, MSG_STAGE1)


_CASE = {"upper": str.upper, "lower": str.lower, "title": str.title}


def _decorate(value: str, how: str) -> str:
    if how in _CASE:
        return _CASE[how](value)
    if how == "accent":
        return value.replace("O", "Ô").replace("E", "É").replace("o", "ô").replace("e", "é")
    return f" {value.replace(' ', '  ')} "  # spaces around and doubled


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*_CASE, "accent", "spaces"]), max_size=3))
def test_standin_tolerates_case_and_accents(decorations):
    s = SngiStandIn(_truth({}), 1, ALONE)
    nom, prenom = "LE GOFF", "JEAN-PIERRE"
    for how in decorations:
        nom, prenom = _decorate(nom, how), _decorate(prenom, how)
    assert s.match(**{**TRUE, "nom": nom, "prenom1": prenom})[0] == ACCEPTED


def test_standin_loose_policy_ignores_birth_name_punctuation_only():
    s = SngiStandIn(_truth({}), 1, Policy(birth_name="loose", homonym_share=0.0))
    assert s.match(**{**TRUE, "nom": "LEGOFF"})[0] == ACCEPTED
    assert s.match(**{**TRUE, "prenom1": "JEAN PIERRE"})[0] == REJECTED


def test_standin_funnel_with_homonyms_and_duplicates():
    twin = {
        "true_birth_date": "2001-09-02",
        "true_birth_code": "75113",
        "true_first_name_2": "PAUL",
    }
    s = SngiStandIn(_truth({}, twin), 1, ALONE)
    # the right day and month pick the holder among homonyms
    assert s.match(**TRUE)[0] == ACCEPTED
    # a wrong day with a homonym on the stage-1 key: stage 2 rejects
    assert s.match(**{**TRUE, "jour": 18})[2] == MSG_STAGE2
    # the same wrong day alone in the register: accepted (stage 2 never runs)
    alone = SngiStandIn(_truth({}), 1, ALONE)
    assert alone.match(**{**TRUE, "jour": 18})[0] == ACCEPTED
    # day and month nil: the commune, then the first names 2/3 decide
    nil = {**TRUE, "mois": None, "jour": None}
    assert s.match(**nil)[2] == MSG_SEVERAL
    assert s.match(**nil, commune="44109")[0] == ACCEPTED
    assert s.match(**nil, prenom2="LUC")[0] == ACCEPTED
    assert s.match(**nil, prenom2="MARC")[2] == MSG_PRENOMS
    dup = SngiStandIn(_truth({"sngi_duplicate": True}), 1, ALONE)
    assert dup.match(**TRUE, commune="44109", prenom2="LUC")[2] == MSG_SEVERAL
    gone = SngiStandIn(_truth({"in_register": False}), 1, ALONE)
    assert gone.match(**TRUE)[2] == MSG_STAGE1


def test_standin_hypothesis_b_checks_first_names_2_3_whenever_sent():
    a = SngiStandIn(_truth({}), 1, ALONE)
    b = SngiStandIn(_truth({}), 1, Policy(prenoms_2_3="B", homonym_share=0.0))
    assert a.match(**TRUE, prenom2="MARC")[0] == ACCEPTED
    assert b.match(**TRUE, prenom2="MARC")[2] == MSG_PRENOMS


def test_standin_draws_homonyms_at_the_configured_share(perturbed):
    s = SngiStandIn(perturbed.truth, 3)
    originals = perturbed.truth[
        (perturbed.truth["role"] == "original") & perturbed.truth["in_register"]
    ]
    with_homonym = 0
    for p in originals.itertuples():
        found = s.candidates(
            p.true_birth_name, p.true_first_name_1, p.true_sex, int(p.true_birth_date[:4])
        )
        with_homonym += len(found) > 1 + int(p.sngi_duplicate)
    share = with_homonym / len(originals)
    assert 0.05 < share < 0.10


# -- the score ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    work = tmp_path_factory.mktemp("independent")
    return evaluate_independent(500, 13, use_gx=False, work=work), work


def test_score_counts_add_up(scored):
    s, _ = scored
    assert s.rows > 300
    assert sum(k.rows for k in s.kinds) == s.rows
    assert s.blocked + s.sent == s.rows
    assert s.blocked_accepted + s.blocked_rejected == s.blocked
    assert s.rejected_sent <= s.rejected_all <= s.rows
    assert s.clean_rows == s.kind(NONE).rows
    assert sum(s.messages.values()) == s.rejected_all
    assert s.recoverable_blocked <= s.recoverable_flagged <= s.recoverable <= s.rejected_all
    assert s.rejected_flagged <= s.rejected_all
    assert sum(n for n, _, _ in s.clean_by_nir.values()) == s.clean_rows
    for k in s.kinds:
        assert k.blocked <= k.flagged <= k.rows
        assert k.rejected_blocked <= k.rejected_flagged <= k.rejected <= k.rows
    shares = [
        s.block_precision_wrong, s.block_precision_rejected, s.rejection_rate_all,
        s.rejection_rate_sent, s.clean_flagged_share, s.clean_blocked_share,
        s.rejections_caught, s.recoverable_recall,
        *(k.share(c) for k in s.kinds for c in (k.rejected, k.flagged, k.blocked)),
    ]  # fmt: skip
    assert all(x is None or 0.0 <= x <= 1.0 for x in shares)


def test_score_is_sane(scored):
    s, _ = scored
    # clean rows pass the stand-in; holders without NIR and stage-1 errors do not
    assert s.kind(NONE).rejected == 0
    assert s.kind("absent_from_sngi").share(s.kind("absent_from_sngi").rejected) > 0.8
    assert s.kind("accents_case").rejected == 0
    assert 0.03 < s.rejection_rate_all < 0.20
    assert s.rejection_rate_sent <= s.rejection_rate_all


TECHNICAL = {"BLOCK", "WARN", "CDC", "SNGI", "NIR", "OK", "W|B"}


def test_format_is_bilingual_and_carries_no_personal_value(scored):
    s, work = scored
    text = format_independent(s)
    for heading in ("genre / kind", "précision", "clean rows flagged", "undetectable"):
        assert heading in text
    for name, _ in s.undetectable:
        assert name in text
    truth = read_truth(next(work.rglob("truth.sqlite")))
    names = set(truth["true_birth_name"]) | set(truth["true_first_name_1"])
    tokens = set(re.findall(r"[A-ZÀ-Ÿ][A-ZÀ-Ÿ'-]+", text)) - TECHNICAL
    assert not tokens & names

"""The CDC simulator: the funnel stage by stage, already-in-base, XSD receipts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.receipts.parser import Reason, Receipt, deposited_file_from_receipt_name
from cpf_deposit.samples import sample_passages
from cpf_deposit.simulator.cdc import (
    MSG_SEVERAL,
    MSG_STAGE_1,
    MSG_STAGE_2,
    MSG_STAGE_3,
    CdcState,
    CivilRegister,
    simulate,
)

BASE = sample_passages()[0]  # MARTIN Jean-François, M, 2001-03-14, born 72181
NOW = dt.datetime(2024, 8, 1, 9, 0, tzinfo=dt.UTC)


def _register(*people, loose=False):
    reg = CivilRegister(loose=loose)
    for person in people:
        reg.add(*person)
    return reg


ME = ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 3, 14, "72181", "LOUIS", None)


@pytest.mark.parametrize(
    ("register", "change", "expected"),
    [
        ([ME], {}, None),  # unique on stage 1
        ([ME], {"birth_name": "Martin"}, None),  # case ignored
        ([("MARTÍN", "JÉAN-FRANÇOIS", "M", 2001, 3, 14, "72181")], {}, None),  # accents ignored
        ([ME], {"first_name_1": "Jean François"}, MSG_STAGE_1),  # the hyphen matters
        ([ME], {"sex": "F"}, MSG_STAGE_1),
        ([ME], {"birth_year": 2002}, MSG_STAGE_1),
        ([ME], {"first_name_1": "Jean-François Louis"}, MSG_STAGE_1),  # two names in prenom1
        # Homonyms: stage 2 picks the one born that day.
        ([ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 7, 2, "75056")], {}, None),
        (
            [ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 7, 2, "75056")],
            {"birth_day": 15},
            MSG_STAGE_2,
        ),
        # Same birth date: stage 3 uses the birthplace and other first names.
        ([ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 3, 14, "75056")], {}, None),
        (
            [ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 3, 14, "75056")],
            {"birth_insee_code": "13055"},
            MSG_STAGE_3,
        ),
        ([ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 3, 14, "72181", "PAUL")], {}, None),
        ([ME, ME], {}, MSG_SEVERAL),
        # Unknown day and month: stage 2 cannot narrow, stage 3 still can.
        (
            [ME, ("MARTIN", "JEAN-FRANCOIS", "M", 2001, 7, 2, "75056")],
            {"birth_month": None, "birth_day": None},
            None,
        ),
    ],
)
def test_funnel(register, change, expected):
    passage = dataclasses.replace(BASE, **change)
    assert _register(*register).identify(passage) == expected


def test_loose_mode_ignores_birth_name_punctuation():
    person = ("NDIAYE", "AISSATOU", "F", 1999, 11, 30, "99341")
    passage = dataclasses.replace(sample_passages()[1], first_name_1="Aïssatou")
    assert _register(person).identify(passage) == MSG_STAGE_1  # N'DIAYE != NDIAYE today
    assert _register(person, loose=True).identify(passage) is None


def _flux(tmp_path, passages, name="out"):
    header = Header("01BJD364", "01BJD364", "MCFCER000123", "0720916E")
    batch = write_flux(passages, header, tmp_path / name, tz=ZoneInfo("Europe/Paris"), moment=NOW)
    return batch.files[0].path


def test_receipt_is_shaped_like_the_real_one_and_reads_back(tmp_path):
    s = sample_passages()
    reg = _register(
        ME,
        ("N'DIAYE", "AISSATOU", "F", 1999, 11, 30, "99341"),
        ("LE GOFF", "MAEL", "M", 2000, 1, 5, None),
    )
    state = CdcState(tmp_path / "state.sqlite")
    flux = _flux(tmp_path, s)
    outcome = simulate(flux, reg, tmp_path / "inbox", state, now=NOW)
    assert outcome.receipt.name == f"Accusé de traitement_{flux.name}_20240801.xml"
    assert deposited_file_from_receipt_name(outcome.receipt.name) == (flux.name, "20240801")
    text = outcome.receipt.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<rapport ')
    assert text.index("<PassagesKO>") < text.index("<PassagesOK>")
    receipt = Receipt(outcome.receipt)
    assert receipt.header.file_name == flux.name and receipt.header.kind == "results"
    results = {r.technical_id: r.reason for r in receipt.results()}
    # DEMO-0003 (ŒUVRARD-D'ALMEIDA) is not in the register; DEMO-0005 is a CPF file reference.
    assert results == {
        "DEMO-0001": Reason.ACCEPTED,
        "DEMO-0002": Reason.ACCEPTED,
        "DEMO-0003": Reason.NO_MATCH_STAGE_1,
        "DEMO-0004": Reason.ACCEPTED,
        "DEMO-0005": Reason.ACCEPTED,
    }
    assert (outcome.accepted, outcome.rejected) == (4, 1)


def test_an_accepted_passage_sent_again_exists_already(tmp_path):
    reg = _register(ME)
    state = CdcState(tmp_path / "state.sqlite")
    simulate(_flux(tmp_path, [BASE], "a"), reg, tmp_path / "inbox", state, now=NOW)
    again = simulate(_flux(tmp_path, [BASE], "b"), reg, tmp_path / "inbox2", state, now=NOW)
    [result] = Receipt(again.receipt).results()
    assert result.reason is Reason.ALREADY_IN_BASE and result.accepted
    assert "bcr émetteur 01BJD364" in result.message


def test_a_rejected_passage_is_not_stored_and_can_be_sent_again(tmp_path):
    state = CdcState(tmp_path / "state.sqlite")
    first = simulate(_flux(tmp_path, [BASE], "a"), _register(), tmp_path / "i1", state, now=NOW)
    assert first.rejected == 1
    second = simulate(_flux(tmp_path, [BASE], "b"), _register(ME), tmp_path / "i2", state, now=NOW)
    assert second.accepted == 1


def test_certification_without_prefix_is_ko(tmp_path):
    p = dataclasses.replace(BASE, certification_code="24514")
    o = simulate(_flux(tmp_path, [p]), _register(ME), tmp_path / "inbox", CdcState(tmp_path / "s"))
    [result] = Receipt(o.receipt).results()
    assert result.reason is Reason.CERTIFICATION_KO


def test_xsd_invalid_file_gets_an_error_receipt(tmp_path):
    flux = _flux(tmp_path, [BASE])
    flux.write_text(
        flux.read_text(encoding="utf-8").replace("<cpf:sexe>M<", "<cpf:sexe>H<"), encoding="utf-8"
    )
    o = simulate(flux, _register(ME), tmp_path / "inbox", CdcState(tmp_path / "s"), now=NOW)
    receipt = Receipt(o.receipt)
    assert receipt.header.kind == "xsd_errors" and o.xsd_errors == 1
    [error] = receipt.xsd_errors()
    assert error.type == "XSD" and error.line and "sexe" in error.message

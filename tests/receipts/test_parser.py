"""Receipts: the real CDC sample, both shapes, hostile files, and the file names."""

from __future__ import annotations

import pytest

from cpf_deposit.receipts.parser import (
    Reason,
    Receipt,
    ReceiptError,
    classify,
    deposited_file_from_receipt_name,
)
from tests.conftest import OFFICIAL_RECEIPT


def test_real_receipt_gives_two_accepted_one_already_in_base_and_two_rejected():
    receipt = Receipt(OFFICIAL_RECEIPT)
    assert receipt.header.file_name == "pix-cpf-export-20231016-223239.xml"
    assert receipt.header.id_flux == "4df76fd4-0915-46df-8c56-525506af35be"
    assert receipt.header.processing_id == "67598"
    assert receipt.header.kind == "results"
    got = {r.technical_id: r.reason for r in receipt.results()}
    assert got == {
        "1979262": Reason.NO_MATCH_STAGE_1,
        "1996215": Reason.NO_MATCH_STAGE_2,
        "1983189": Reason.ALREADY_IN_BASE,
        "1968666": Reason.ACCEPTED,
        "1964200": Reason.ACCEPTED,
    }
    assert sum(r.accepted for r in receipt.results()) == 3


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Aucun titulaire ne correspond aux critères obligatoires", Reason.NO_MATCH_STAGE_1),
        (
            "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois "
            "de naissance",
            Reason.NO_MATCH_STAGE_2,
        ),
        ("Aucun titulaire ne correspond aux critères de reconciliation", Reason.NO_MATCH_STAGE_3),
        (
            "Aucun titulaire ne correspond aux critères des prénoms 2 et 3",
            Reason.NO_MATCH_FIRST_NAMES_2_3,
        ),
        ("Aucun titulaire ne correspond à ces critères", Reason.NO_MATCH_STAGE_1),
        ("Plusieurs titulaires ont été identifiés", Reason.SEVERAL_HOLDERS),
        (
            "Le statut de la certification avec le bcr émetteur 03VML243, l'id technique "
            "partenaire 12 et l'index 0 est KO",
            Reason.CERTIFICATION_KO,
        ),
        (
            "La date de fin de validité est inférieure à date de début de validité pour le "
            "passage certification avec le bcr émetteur 03VML243 et l'id technique partenaire 9",
            Reason.DATES,
        ),
        (
            "Le passage certification avec le bcr émetteur 03VML243 et l'id technique partenaire "
            "1559735 existe déjà en base",
            Reason.ALREADY_IN_BASE,
        ),
        ("AUCUN TITULAIRE NE CORRESPOND AUX CRITERES OBLIGATOIRES", Reason.NO_MATCH_STAGE_1),
        ("Erreur technique inattendue", Reason.UNKNOWN),
    ],
)
def test_cdc_messages_are_classified(message, reason):
    assert classify(message) is reason


def _write(tmp_path, text, name="r.xml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


XSD_RECEIPT = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<rapport xmlns:ns2="urn:cdc:cpf:pc5:rapport:schema">
  <nomFichier>CPF_0720916E_01BJD364_20240715150000.xml</nomFichier>
  <idDemande>474</idDemande>
  <erreurs>
    <erreur><type>XSD</type><message>cvc-elt.1.a : Déclaration de l'élément 'cpf:flux'
introuvable.</message><ligne>2</ligne><colonne>52</colonne></erreur>
    <erreur><type>XSD</type><message>cvc-length-valid</message><ligne>9</ligne><colonne>7</colonne></erreur>
  </erreurs>
</rapport>"""


def test_xsd_error_receipt_lists_the_errors(tmp_path):
    receipt = Receipt(_write(tmp_path, XSD_RECEIPT))
    assert receipt.header.kind == "xsd_errors"
    assert receipt.header.processing_id == "474"
    errors = receipt.xsd_errors()
    assert [(e.type, e.line, e.column) for e in errors] == [("XSD", 2, 52), ("XSD", 9, 7)]
    assert list(receipt.results()) == []


def test_element_names_are_matched_case_insensitively(tmp_path):
    text = (
        "<rapport><nomFichier>f.xml</nomFichier><idFlux>x</idFlux>"
        "<passagesKO><passage><idTechnique>A</idTechnique>"
        "<messageErreur>Plusieurs titulaires ont été identifiés</messageErreur></passage>"
        "</passagesKO><passagesOK><idTechnique>B</idTechnique></passagesOK></rapport>"
    )
    receipt = Receipt(_write(tmp_path, text))
    assert [(r.technical_id, r.reason) for r in receipt.results()] == [
        ("A", Reason.SEVERAL_HOLDERS),
        ("B", Reason.ACCEPTED),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<rapport><nomFichier>&b;</nomFichier></rapport>",
            "DTD or entity",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<rapport><nomFichier>&x;</nomFichier></rapport>",
            "DTD or entity",
        ),
        ("<rapport><nomFichier>f.xml</nomFichier><PassagesOK><idTechnique>1", "well-formed"),
        ("<flux><idFlux>1</idFlux></flux>", "is not a CDC <rapport>"),
        ("", "empty file"),
    ],
)
def test_hostile_or_broken_receipts_are_refused(tmp_path, text, expected):
    with pytest.raises(ReceiptError, match=expected):
        Receipt(_write(tmp_path, text))


def test_oversized_receipt_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.xml"
    with path.open("wb") as fh:
        fh.truncate(1024**3)  # a 1 GB sparse file: refused on its size alone
    with pytest.raises(ReceiptError, match="more than"):
        Receipt(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "Accusé de traitement_CPF_0720916E_01BJD364_20240715150000.xml_20240801.xml",
            ("CPF_0720916E_01BJD364_20240715150000.xml", "20240801"),
        ),
        (
            "Accus%C3%A9%20de%20traitement_lnf00000-0000-0000-0000-000000000004.xml_20230427.xml",
            ("lnf00000-0000-0000-0000-000000000004.xml", "20230427"),
        ),
        (
            "Accuse_de_traitement_pix-cpf-export-20231016-223239.xml_20231018.xml",
            ("pix-cpf-export-20231016-223239.xml", "20231018"),
        ),
        (
            "Accuse\u0301 de traitement_CPF_A.xml_20240801.xml",
            ("CPF_A.xml", "20240801"),
        ),
        ("CPF_0720916E_01BJD364_20240715150000.xml", None),
        ("Accusé de réception_CPF_A.xml_20240801.xml", None),
    ],
)
def test_receipt_file_names_give_the_deposited_file(name, expected):
    assert deposited_file_from_receipt_name(name) == expected

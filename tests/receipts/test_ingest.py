"""Ingesting accusés de traitement: statuses, one transaction, duplicates, hostile files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from cpf_deposit.ledger.schema import FileStatus, Status, ledger_file, ledger_passage
from cpf_deposit.receipts.ingest import (
    APPLIED,
    ARCHIVED,
    DUPLICATE,
    INDEX_NAME,
    REFUSED,
    ReceiptArchive,
    format_reason,
    ingest_files,
    ingest_inbox,
    split_reason,
)
from cpf_deposit.receipts.parser import Reason
from tests.conftest import OFFICIAL_RECEIPT
from tests.receipts.conftest import cli, deposit_file, snapshot

PIX_FILE = "pix-cpf-export-20231016-223239.xml"
PIX_FLUX = "4df76fd4-0915-46df-8c56-525506af35be"
PIX_IDS = ["1979262", "1996215", "1983189", "1968666", "1964200"]
PIX_RECEIPT = f"Accuse_de_traitement_{PIX_FILE}_20231018.xml"

FILE = "CPF_0720916E_01BJD364_20240715150000.xml"
FLUX = "0b6d3a4e-1f7a-4c1e-9a55-3c1c9d6a7e01"
IDS = ["T-A", "T-B", "T-C", "T-D"]
STAGE_1 = "Aucun titulaire ne correspond aux critères obligatoires"


def receipt_xml(file_name=FILE, id_flux=FLUX, ko=(), ok=(), head="") -> str:
    body = [f"<nomFichier>{file_name}</nomFichier>"]
    if id_flux is not None:
        body.append(f"<idFlux>{id_flux}</idFlux>")
    body.append("<idTraitement>67001</idTraitement>")
    if ko:
        body.append("<PassagesKO>")
        body += [
            f"<passage><idTechnique>{t}</idTechnique><messageErreur>{m}</messageErreur></passage>"
            for t, m in ko
        ]
        body.append("</PassagesKO>")
    if ok:
        body.append("<PassagesOK>" + "".join(f"<idTechnique>{t}</idTechnique>" for t in ok))
        body.append("</PassagesOK>")
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="no"?>{head}\n'
        '<rapport xmlns:ns2="urn:cdc:cpf:pc5:rapport:schema">' + "".join(body) + "</rapport>"
    )


def drop(config, name: str, text: str | bytes) -> Path:
    inbox = Path(config.paths.inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def passages_by_id(ledger) -> dict[str, tuple[str, str | None]]:
    P = ledger_passage.c
    with ledger.engine.connect() as conn:
        return {
            r[0]: (r[1], r[2]) for r in conn.execute(select(P.technical_id, P.status, P.reason))
        }


def file_status(ledger, id_flux: str) -> str:
    F = ledger_file.c
    with ledger.engine.connect() as conn:
        return conn.execute(select(F.status).where(F.id_flux == id_flux)).scalar_one()


# --------------------------------------------------------------------------------------
# The real CDC receipt (SQLite and PostgreSQL)
# --------------------------------------------------------------------------------------


@pytest.fixture
def pix_ledger(ledger_url):
    from cpf_deposit.ledger import open_ledger

    led = open_ledger(url=ledger_url)
    deposit_file(led, PIX_FILE, PIX_FLUX, PIX_IDS)
    yield led
    led.dispose()


def test_real_receipt_updates_the_statuses(pix_ledger, config):
    drop(config, PIX_RECEIPT, OFFICIAL_RECEIPT.read_bytes())
    report = ingest_inbox(pix_ledger, config)

    (r,) = report.results
    assert (r.status, r.file_name, r.id_flux, r.processing_id) == (
        APPLIED,
        PIX_FILE,
        PIX_FLUX,
        "67598",
    )
    assert (r.accepted, r.already_in_base, r.rejected_total) == (2, 1, 2)
    assert dict(r.rejected) == {"no_match_stage_1": 1, "no_match_stage_2": 1}
    assert r.rate == pytest.approx(3 / 5)
    assert not r.problem and r.missing == 0

    got = passages_by_id(pix_ledger)
    assert {t: got[t][0] for t in PIX_IDS} == {
        "1979262": Status.REJECTED,
        "1996215": Status.REJECTED,
        "1983189": Status.ACCEPTED,
        "1968666": Status.ACCEPTED,
        "1964200": Status.ACCEPTED,
    }
    assert split_reason(got["1979262"][1]) == ("no_match_stage_1", STAGE_1)
    assert split_reason(got["1996215"][1]) == (
        "no_match_stage_2",
        "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois "
        "de naissance",
    )
    code, message = split_reason(got["1983189"][1])
    assert code == "already_in_base" and message.endswith("1559735 existe déjà en base")
    assert got["1968666"][1] is None
    assert file_status(pix_ledger, PIX_FLUX) == FileStatus.PROCESSED

    archive = ReceiptArchive.of(config)
    assert (archive.root / r.archived_as).read_bytes() == OFFICIAL_RECEIPT.read_bytes()
    assert list(Path(config.paths.inbox).iterdir()) == []
    (entry,) = archive.entries()
    assert entry["sha256"] == r.sha256 and entry["file_name"] == PIX_FILE


# --------------------------------------------------------------------------------------
# Names, shapes, odd content
# --------------------------------------------------------------------------------------


@pytest.fixture
def ledger4(sqlite_ledger):
    deposit_file(sqlite_ledger, FILE, FLUX, IDS)
    return sqlite_ledger


@pytest.mark.parametrize(
    "name",
    [
        f"Accusé de traitement_{FILE}_20240801.xml",
        f"Accus%C3%A9%20de%20traitement_{FILE}_20240801.xml",
        f"Accuse_de_traitement_{FILE}_20240801.xml",
        f"Accuse\u0301 de traitement_{FILE}_20240801.xml",
        "rapport-sans-nom-standard.xml",  # the content names the file
    ],
)
def test_every_receipt_name_shape_is_ingested(ledger4, config, name):
    drop(config, name, receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"]))
    (r,) = ingest_inbox(ledger4, config).results
    assert (r.status, r.accepted, r.rejected_total) == (APPLIED, 3, 1)
    assert passages_by_id(ledger4)["T-A"][0] == Status.REJECTED


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (STAGE_1, Reason.NO_MATCH_STAGE_1),
        (
            "Aucun titulaire ne correspond aux critères de reconciliation",
            Reason.NO_MATCH_STAGE_3,
        ),
        ("Plusieurs titulaires ont été identifiés", Reason.SEVERAL_HOLDERS),
        (
            "Le statut de la certification avec le bcr émetteur 01BJD364, l'id technique "
            "partenaire T-A et l'index 0 est KO",
            Reason.CERTIFICATION_KO,
        ),
        (
            "La date de fin de validité est inférieure à date de début de validité pour le "
            "passage certification avec le bcr émetteur 01BJD364 et l'id technique partenaire T-A",
            Reason.DATES,
        ),
        ("Erreur   technique <inattendue> &amp; nouvelle", Reason.UNKNOWN),
    ],
)
def test_rejection_keeps_the_normalised_reason_and_the_verbatim_message(
    ledger4, config, message, reason
):
    escaped = message.replace("<", "&lt;").replace(">", "&gt;")
    drop(config, f"Accusé de traitement_{FILE}_20240801.xml", receipt_xml(ko=[("T-A", escaped)]))
    (r,) = ingest_inbox(ledger4, config).results
    status, stored = passages_by_id(ledger4)["T-A"]
    assert status == Status.REJECTED
    verbatim = message.replace("&amp;", "&")
    assert stored == format_reason(reason, verbatim)
    assert dict(r.rejected) == {reason.value: 1}
    if reason is Reason.UNKNOWN:  # kept verbatim and counted, never dropped
        assert dict(r.unknown_messages) == {verbatim: 1}
    assert r.missing == 3  # the other passages have no result yet: the file stays DEPOSITED
    assert file_status(ledger4, FLUX) == FileStatus.DEPOSITED


def test_xsd_error_receipt_rejects_the_whole_file(ledger4, config):
    text = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><rapport>'
        f"<nomFichier>{FILE}</nomFichier><idDemande>474</idDemande><erreurs>"
        "<erreur><type>XSD</type><message>cvc-elt.1.a : Déclaration de l'élément 'cpf:flux' "
        "introuvable.</message><ligne>2</ligne><colonne>52</colonne></erreur>"
        "<erreur><type>XSD</type><message>cvc-length-valid</message><ligne>9</ligne>"
        "<colonne>7</colonne></erreur></erreurs></rapport>"
    )
    drop(config, f"Accusé de traitement_{FILE}_20240801.xml", text)
    (r,) = ingest_inbox(ledger4, config).results
    assert (r.status, r.shape, len(r.xsd_errors), r.file_rejected) == (
        APPLIED,
        "xsd_errors",
        2,
        4,
    )
    got = passages_by_id(ledger4)
    assert {got[t][0] for t in IDS} == {Status.FILE_REJECTED}
    code, message = split_reason(got["T-A"][1])
    assert code == "xsd_errors"
    assert "2 erreur(s) XSD" in message and "Déclaration de l'élément 'cpf:flux'" in message
    assert file_status(ledger4, FLUX) == FileStatus.FILE_REJECTED


def test_unknown_idtechniques_are_reported_and_the_rest_applied(ledger4, config):
    drop(
        config,
        f"Accusé de traitement_{FILE}_20240801.xml",
        receipt_xml(ko=[("T-ZZ", STAGE_1)], ok=["T-A", "T-B", "T-C", "T-D", "T-YY"]),
    )
    before_unknown = cli(["--config", str(config.source_file), "ingest-receipts"])
    assert before_unknown == 1  # an unknown idTechnique is a data problem
    (entry,) = ReceiptArchive.of(config).entries()
    assert entry["unknown_ids"] == 2
    got = passages_by_id(ledger4)
    assert {got[t][0] for t in IDS} == {Status.ACCEPTED}
    assert "T-ZZ" not in got and "T-YY" not in got


def test_accuse_de_reception_is_archived_with_its_file(ledger4, config):
    name = f"Accusé de réception_{FILE}_20240716.pdf"
    drop(config, name, b"%PDF-1.4 opaque")
    (r,) = ingest_inbox(ledger4, config).results
    assert (r.status, r.file_name) == (ARCHIVED, FILE)
    archive = ReceiptArchive.of(config)
    assert (archive.folder_for(FILE) / name).read_bytes() == b"%PDF-1.4 opaque"
    assert archive.entries()[0]["kind"] == "reception"
    assert file_status(ledger4, FLUX) == FileStatus.DEPOSITED  # no ledger change


# --------------------------------------------------------------------------------------
# Refused: hostile, broken, or for a file the ledger does not know. Nothing changes.
# --------------------------------------------------------------------------------------

RNAME = f"Accusé de traitement_{FILE}_20240801.xml"


def _sparse(path: Path) -> None:
    with path.open("wb") as fh:
        fh.truncate(1024**3)


HOSTILE = [
    (
        "entity-expansion",
        RNAME,
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
        f"]><rapport><nomFichier>{FILE}</nomFichier><PassagesOK><idTechnique>&b;</idTechnique>"
        "</PassagesOK></rapport>",
        "DTD or entity",
    ),
    (
        "external-entity",
        RNAME,
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f"<rapport><nomFichier>{FILE}</nomFichier><PassagesOK><idTechnique>&x;</idTechnique>"
        "</PassagesOK></rapport>",
        "DTD or entity",
    ),
    ("sparse-1GB", RNAME, _sparse, "plus que les"),
    (
        "truncated",
        RNAME,
        receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"])[:-40],
        "truncated or damaged",
    ),
    ("wrong-root", RNAME, f"<flux><nomFichier>{FILE}</nomFichier></flux>", "not a CDC <rapport>"),
    (
        "unknown-file",
        "Accusé de traitement_CPF_INCONNU.xml_20240801.xml",
        receipt_xml(file_name="CPF_INCONNU.xml", id_flux=None, ok=["T-A"]),
        "inconnu du registre",
    ),
    (
        "unknown-idflux",
        RNAME,
        receipt_xml(id_flux="ffffffff-0000-0000-0000-000000000000", ok=["T-A"]),
        "inconnu du registre",
    ),
    (
        "name-and-content-disagree",
        "Accusé de traitement_CPF_AUTRE.xml_20240801.xml",
        receipt_xml(ok=["T-A"]),
        "son contenu",
    ),
    (
        "contradictory",
        RNAME,
        receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-A", "T-B"]),
        "deux fois avec des résultats différents",
    ),
    ("empty", RNAME, "", "fichier vide"),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_or_unplaceable_receipts_are_refused_and_change_nothing(
    ledger4, config, name, text, expected
):
    if callable(text):
        path = Path(config.paths.inbox) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text(path)
    else:
        drop(config, name, text)
    before = snapshot(ledger4)
    (r,) = ingest_inbox(ledger4, config).results
    assert r.status == REFUSED and r.problem
    assert expected in r.error
    assert snapshot(ledger4) == before
    refused = Path(config.paths.inbox) / "refused"
    assert (refused / name).exists()  # nothing lost
    motif = (refused / (name + ".motif.txt")).read_text(encoding="utf-8")
    assert expected in motif and "registre n'a pas été modifié" in motif
    assert not (Path(config.paths.inbox) / name).exists()
    assert ReceiptArchive.of(config).entries() == []


def test_cli_exit_codes_and_summary(ledger4, config, capsys):
    drop(config, RNAME, receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"]))
    assert cli(["--config", str(config.source_file), "ingest-receipts"]) == 0
    out = capsys.readouterr().out
    assert "acceptés : 3 (dont 0 déjà en base) ; rejetés : 1 ; taux : 75,00 %" in out
    assert "aucun titulaire (critères obligatoires) : 1" in out
    assert "reconciliation 75,00 %" in out
    drop(config, "Accusé de traitement_X.xml_20240801.xml", "<rapport><nomFichier>X.xml")
    assert cli(["--config", str(config.source_file), "ingest-receipts"]) == 1
    assert "REFUSÉ" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# Twice
# --------------------------------------------------------------------------------------


def test_ingesting_the_same_receipt_twice_changes_nothing(ledger4, config):
    text = receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"])
    drop(config, RNAME, text)
    (first,) = ingest_inbox(ledger4, config).results
    assert first.status == APPLIED
    after_first = snapshot(ledger4)
    archive = ReceiptArchive.of(config)
    index_before = (archive.root / INDEX_NAME).read_text(encoding="utf-8")

    # the same bytes dropped again, under another name too
    drop(config, RNAME, text)
    drop(config, f"Accuse_de_traitement_{FILE}_20240802.xml", text)
    again = ingest_inbox(ledger4, config).results
    assert [r.status for r in again] == [DUPLICATE, DUPLICATE]
    assert all(r.duplicate_of == first.archived_as for r in again)
    # named explicitly (a copy elsewhere)
    elsewhere = Path(config.paths.base_dir) / "copie.xml"
    elsewhere.write_text(text, encoding="utf-8")
    (explicit,) = ingest_files(ledger4, config, [elsewhere]).results
    assert explicit.status == DUPLICATE and elsewhere.exists()

    assert snapshot(ledger4) == after_first
    assert (archive.root / INDEX_NAME).read_text(encoding="utf-8") == index_before
    assert list(Path(config.paths.inbox).iterdir()) == []

    # even with the archive's index lost, the ledger does not move
    (archive.root / INDEX_NAME).unlink()
    drop(config, RNAME, text)
    (replayed,) = ingest_inbox(ledger4, config).results
    assert replayed.status == APPLIED and replayed.recorded_before == 4
    assert snapshot(ledger4) == after_first
    assert json.loads((archive.root / INDEX_NAME).read_text(encoding="utf-8"))["name"] == RNAME


def test_refused_names_never_overwrite_each_other(ledger4, config):
    for _ in range(2):
        drop(config, RNAME, "<flux/>")
        ingest_inbox(ledger4, config)
    refused = sorted(p.name for p in (Path(config.paths.inbox) / "refused").iterdir())
    stem = RNAME.removesuffix(".xml")
    assert refused == sorted(
        [RNAME, RNAME + ".motif.txt", f"{stem}-2.xml", f"{stem}-2.xml.motif.txt"]
    )


def test_explicit_file_is_copied_to_the_archive_and_left_in_place(ledger4, config, tmp_path):
    src = tmp_path / "elsewhere" / RNAME
    src.parent.mkdir()
    src.write_text(receipt_xml(ok=IDS), encoding="utf-8")
    (r,) = ingest_files(ledger4, config, [src]).results
    assert r.status == APPLIED and src.is_file()
    assert (ReceiptArchive.of(config).root / r.archived_as).is_file()
    shutil.rmtree(src.parent)

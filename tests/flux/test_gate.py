"""The fast XSD gate agrees with the full validator on the files the writer produces."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cpf_deposit.flux.build import build_flux
from cpf_deposit.flux.gate import BATCH, passes_xsd
from cpf_deposit.flux.validator import load_schema, validate_file
from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.samples import sample_passages
from tests.conftest import OFFICIAL_SAMPLE, OFFICIAL_XSD

HEADER = Header("01BJD364", "01BJD364", "MCFCER000123", "0720916E")
MOMENT = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


def _file(tmp_path, copies: int = 1):
    items = [
        dataclasses.replace(p, technical_id=f"{p.technical_id}-{i}")
        for i in range(copies)
        for p in sample_passages()
    ]
    batch = write_flux(items, HEADER, tmp_path, tz=ZoneInfo("Europe/Paris"), moment=MOMENT)
    return batch.files[0].path


@pytest.mark.parametrize("copies", [1, BATCH // 5 + 3])  # one batch, and several batches
def test_written_files_pass(tmp_path, copies):
    path = _file(tmp_path, copies)
    assert passes_xsd(path, load_schema()) == (True, 5 * copies)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<cpf:sexe>F<", "<cpf:sexe>H<"),  # a passage (in a batch) breaks an enumeration
        ("<cpf:sexe>M<", "<cpf:sexe>H<"),  # the first passage of a block (in the envelope)
        ("<cpf:idContrat>MCFCER000123<", "<cpf:idContrat>MCFCER0001234567890123<"),
        ("<cpf:type>RNCP</cpf:type>", ""),  # envelope: missing element
        ('<cpf:mentionValidee xsi:nil="true"/>', ""),  # a required nillable element gone
        ("</cpf:passageCertification>\n", "</cpf:passageCertification></cpf:certification>\n"),
        ("<cpf:horodatage>2025-03-01T10:00:00+01:00", "<cpf:horodatage>2025-03-01T10:00:00Z"),
    ],
)
def test_any_fault_fails_the_gate_as_it_fails_the_validator(tmp_path, old, new):
    path = _file(tmp_path, 3)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    ok, _ = passes_xsd(path, load_schema())
    assert ok is False
    assert not validate_file(path).valid


def test_a_pretty_printed_file_is_judged_whole(tmp_path):
    assert passes_xsd(OFFICIAL_SAMPLE, load_schema(OFFICIAL_XSD))[0] is True
    broken = tmp_path / "sample.xml"
    broken.write_text(
        OFFICIAL_SAMPLE.read_text(encoding="utf-8").replace("<cpf:sexe>M<", "<cpf:sexe>H<", 1),
        encoding="utf-8",
    )
    assert passes_xsd(broken, load_schema(OFFICIAL_XSD))[0] is False


def test_build_reports_a_gate_failure_with_the_full_diagnosis(tmp_path, monkeypatch):
    from cpf_deposit.flux import writer

    real = writer.render_passage

    def faulty(p):
        line = real(p)
        return (
            line.replace("<cpf:sexe>F<", "<cpf:sexe>X<") if p.technical_id == "DEMO-0002" else line
        )

    monkeypatch.setattr(writer, "render_passage", faulty)
    result = build_flux(
        sample_passages(), HEADER, tmp_path, tz=ZoneInfo("Europe/Paris"), parallel=False
    )
    [report] = result.reports
    assert not report.valid
    assert [i.technical_id for i in report.errors] == ["DEMO-0002"]

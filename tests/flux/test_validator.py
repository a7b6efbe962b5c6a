"""The streaming validator: XSD errors located in their passage, business rules, safety."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cpf_deposit.flux.validator import FluxIssue, explain, load_schema, validate_file
from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.samples import sample_passages

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SAMPLE = SHARED / "reference" / "cdc" / "cpf-flux-sample-kit-v2.0.0.xml"
OFFICIAL_XSD = SHARED / "reference" / "cdc" / "cpf-flux-v1.1.2.xsd"
HEADER = Header("03VML243", "03VML243", "MCFCER000209", "0720916E")
REPO = Path(__file__).resolve().parents[2]


def write(passages, out_dir: Path) -> Path:
    batch = write_flux(
        passages,
        HEADER,
        out_dir,
        tz=ZoneInfo("Europe/Paris"),
        moment=dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC),
        id_flux_factory=lambda: "11111111-2222-3333-4444-555555555555",
    )
    assert len(batch.files) == 1 and not batch.refused
    return batch.files[0].path


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = [i for i, line in enumerate(lines, 1) if needle in line]
    assert len(found) == 1, needle
    return found[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def only(report, rule: str) -> FluxIssue:
    found = [i for i in report.issues if i.rule == rule]
    assert len(found) == 1, [str(i) for i in report.issues]
    return found[0]


def points_at(path: Path, issue: FluxIssue, element: str) -> bool:
    line = path.read_text(encoding="utf-8").splitlines()[issue.line - 1]
    return line[issue.column - 1 :].startswith(f"<cpf:{element}")


@pytest.fixture
def demo(tmp_path) -> Path:
    """The five demo passages, one per line; award dates are all after 2021-07."""
    return write(sample_passages(), tmp_path)


# --------------------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------------------


def test_official_sample_is_valid_with_award_date_warnings():
    report = validate_file(SAMPLE)
    assert report.valid, [str(i) for i in report.errors]
    assert report.passages == 3
    assert report.id_flux == "6e3c7378-bda4-497a-9bd6-dc203f903ed9"
    assert [(i.rule, i.line, i.severity) for i in report.issues] == [
        ("award-before-2021-07", n, "warning") for n in (26, 86, 133)
    ]
    assert report.issues[0].technical_id == "db855769-bcd6-4253-93cf-e666db666c0a"
    assert "3 passages" in report.summary() and "valid" in report.summary()


def test_official_sample_is_valid_against_the_official_xsd_too():
    report = validate_file(SAMPLE, OFFICIAL_XSD)
    assert report.valid
    assert report.xsd == OFFICIAL_XSD


def test_writer_output_is_clean(demo):
    report = validate_file(demo)
    assert report.valid and report.issues == []
    assert report.passages == 5
    assert report.id_flux == "11111111-2222-3333-4444-555555555555"


def test_schema_is_compiled_once():
    assert load_schema() is load_schema()
    assert load_schema(OFFICIAL_XSD) is not load_schema()


# --------------------------------------------------------------------------------------
# XSD errors are located in their passage
# --------------------------------------------------------------------------------------


def test_xsd_error_in_the_third_passage_names_it(demo):
    edit(
        demo,
        "<cpf:sexe>F</cpf:sexe><cpf:codeCommuneNaissance><cpf:codeInseeNaissance>"
        "<cpf:codeInsee>2A004",
        "<cpf:sexe>X</cpf:sexe><cpf:codeCommuneNaissance>"
        "<cpf:codeInseeNaissance><cpf:codeInsee>2A004",
    )
    report = validate_file(demo)
    assert not report.valid
    issue = only(report, "xsd")
    assert issue.technical_id == "DEMO-0003"
    assert issue.line == line_of(demo, "DEMO-0003")
    assert points_at(demo, issue, "sexe")
    assert issue.element == "sexe"
    assert "[facet 'enumeration']" in issue.message
    assert "« sexe »" in issue.explanation_fr and "'sexe'" in issue.explanation_en
    assert "M, F" in issue.explanation_fr and "M, F" in issue.explanation_en


def test_missing_nillable_element_is_reported_on_its_passage(demo):
    line = line_of(demo, "DEMO-0004")
    edit(
        demo,
        "<cpf:idTechnique>DEMO-0004</cpf:idTechnique>",
        "<cpf:idTechnique>DEMO-0004</cpf:idTechnique><!-- fine -->",
    )
    text = demo.read_text(encoding="utf-8").splitlines()
    text[line - 1] = text[line - 1].replace('<cpf:scoring xsi:nil="true"/>', "", 1)
    demo.write_text("\n".join(text) + "\n", encoding="utf-8")
    issue = only(validate_file(demo), "xsd")
    assert (issue.technical_id, issue.line, issue.column) == ("DEMO-0004", line, 1)
    assert "scoring" in issue.explanation_fr and "scoring" in issue.explanation_en


def test_envelope_error_has_no_passage(demo):
    edit(
        demo,
        "<cpf:idContrat>MCFCER000209</cpf:idContrat>",
        "<cpf:idContrat>MCFCER000209-TOO-LONG-FOR-XSD</cpf:idContrat>",
    )
    issue = only(validate_file(demo), "xsd")
    assert issue.technical_id is None
    assert issue.line == line_of(demo, "<cpf:idContrat>")
    assert points_at(demo, issue, "idContrat")
    assert "20" in issue.explanation_en


def test_misplaced_passage_is_an_unexpected_element(demo):
    line = line_of(demo, "DEMO-0005")
    text = demo.read_text(encoding="utf-8").splitlines()
    moved = text.pop(line - 1)
    at = line_of(demo, "<cpf:code>RS5875</cpf:code>")
    text[at - 1] = text[at - 1].replace("</cpf:code>", "</cpf:code>" + moved, 1)
    text.insert(line - 1, "")  # keep the other lines where they were
    demo.write_text("\n".join(text) + "\n", encoding="utf-8")
    report = validate_file(demo)
    messages = [i.message for i in report.errors]
    assert any("passageCertification" in m and "not expected" in m for m in messages)
    assert report.passages == 5


def test_wrong_namespace_is_one_error(demo):
    text = demo.read_text(encoding="utf-8")
    demo.write_text(text.replace("urn:cdc:cpf:pc5:schema:1.0.0", "urn:cdc:cpf:pc5:schema:1.1.2"))
    report = validate_file(demo)
    assert len(report.errors) == 1
    assert "No matching global declaration" in report.errors[0].message
    assert "espace de noms" in report.errors[0].explanation_fr


def test_errors_spread_over_several_batches_are_all_found(tmp_path):
    passages = [
        dataclasses.replace(sample_passages()[0], technical_id=f"P-{i:04d}") for i in range(450)
    ]
    path = write(passages, tmp_path)
    text = path.read_text(encoding="utf-8")
    for i in (0, 199, 200, 449):
        text = text.replace(
            f"P-{i:04d}</cpf:idTechnique>", f"P-{i:04d}</cpf:idTechnique><cpf:coucou/>"
        )
    path.write_text(text, encoding="utf-8")
    report = validate_file(path)
    assert [i.technical_id for i in report.errors] == ["P-0000", "P-0199", "P-0200", "P-0449"]
    assert all(points_at(path, i, "coucou") for i in report.errors)


def test_max_issues_truncates_and_stops(tmp_path):
    passages = [
        dataclasses.replace(sample_passages()[0], technical_id=f"P-{i:04d}", sex="M")
        for i in range(300)
    ]
    path = write(passages, tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(">M</cpf:sexe>", ">H</cpf:sexe>"))
    report = validate_file(path, max_issues=10)
    assert len(report.issues) == 10 and report.truncated and not report.valid
    assert "truncated" in report.summary()


# --------------------------------------------------------------------------------------
# Business rules
# --------------------------------------------------------------------------------------


def test_duplicate_id(tmp_path):
    # The writer refuses a duplicate, so the file is edited as another tool could produce it.
    path = write(sample_passages()[:3], tmp_path)
    edit(path, "<cpf:idTechnique>DEMO-0003<", "<cpf:idTechnique>DEMO-0001<")
    report = validate_file(path)
    issue = only(report, "duplicate-id")
    assert issue.severity == "error" and not report.valid
    assert issue.technical_id == "DEMO-0001"
    assert issue.line == line_of(path, "Management &amp; innovation")
    assert points_at(path, issue, "idTechnique")


@pytest.mark.parametrize(
    ("changes", "rule", "element"),
    [
        (
            {"valid_until": dt.date(2024, 9, 13), "award_date": dt.date(2024, 9, 12)},
            "validity-dates",
            "dateFinValidite",
        ),
        (
            {"exam_start": dt.date(2024, 6, 2), "exam_end": dt.date(2024, 6, 3)},
            "exam-dates",
            "dateFinExamen",
        ),
    ],
)
def test_reversed_dates(tmp_path, changes, rule, element):
    # The writer refuses reversed dates, so the end date is edited back by one day.
    p = dataclasses.replace(sample_passages()[3], **changes)
    path = write([sample_passages()[0], p], tmp_path)
    end = changes.get("valid_until") or changes["exam_end"]
    earlier = (end - dt.timedelta(days=2)).isoformat()
    edit(path, f"<cpf:{element}>{end.isoformat()}<", f"<cpf:{element}>{earlier}<")
    report = validate_file(path)
    issue = only(report, rule)
    assert issue.severity == "error" and not report.valid
    assert (issue.technical_id, issue.line) == ("DEMO-0004", line_of(path, "DEMO-0004"))
    assert points_at(path, issue, element)
    assert issue.explanation_fr and issue.explanation_en


def test_equal_dates_are_fine(tmp_path):
    day = dt.date(2024, 9, 12)
    p = dataclasses.replace(
        sample_passages()[3], valid_until=day, award_date=day, exam_start=day, exam_end=day
    )
    assert validate_file(write([p], tmp_path)).issues == []


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        (
            "<cpf:presenceNiveauLangueEuro>true</cpf:presenceNiveauLangueEuro>",
            "<cpf:presenceNiveauLangueEuro>false</cpf:presenceNiveauLangueEuro>",
            "niveauLangueEuropeen",
        ),
        (
            "<cpf:presenceNiveauLangueEuro>true</cpf:presenceNiveauLangueEuro>"
            "<cpf:niveauLangueEuropeen>B2</cpf:niveauLangueEuropeen>",
            "<cpf:presenceNiveauLangueEuro> 1 </cpf:presenceNiveauLangueEuro>",
            "presenceNiveauLangueEuro",
        ),
    ],
)
def test_language_level(demo, old, new, element):
    edit(demo, old, new)
    report = validate_file(demo)
    issue = only(report, "language-level")
    assert issue.technical_id == "DEMO-0003" and not report.valid
    assert issue.line == line_of(demo, "DEMO-0003")
    assert points_at(demo, issue, element)


def test_language_flag_one_with_level_is_fine(demo):
    edit(
        demo,
        "<cpf:presenceNiveauLangueEuro>true</cpf:presenceNiveauLangueEuro>",
        "<cpf:presenceNiveauLangueEuro>1</cpf:presenceNiveauLangueEuro>",
    )
    assert validate_file(demo).issues == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "<cpf:presenceNiveauNumeriqueEuro>true</cpf:presenceNiveauNumeriqueEuro>",
            "<cpf:presenceNiveauNumeriqueEuro>false</cpf:presenceNiveauNumeriqueEuro>",
        ),
        (
            "<cpf:presenceNiveauNumeriqueEuro>false</cpf:presenceNiveauNumeriqueEuro>"
            '<cpf:scoring xsi:nil="true"/><cpf:mentionValidee xsi:nil="true"/>',
            "<cpf:presenceNiveauNumeriqueEuro>true</cpf:presenceNiveauNumeriqueEuro>"
            '<cpf:scoring xsi:nil="true"/><cpf:mentionValidee xsi:nil="true"/>',
        ),
    ],
)
def test_digcomp_block(demo, old, new):
    edit(demo, old, new)
    issue = only(validate_file(demo), "digcomp-block")
    who = issue.technical_id
    assert who in ("DEMO-0004", "DEMO-0005")
    assert issue.line == line_of(demo, f">{who}<")


@pytest.mark.parametrize(
    ("old", "new", "who"),
    [
        (
            "<cpf:codePaysNaissance>341</cpf:codePaysNaissance>",
            "<cpf:codePaysNaissance>342</cpf:codePaysNaissance>",
            "DEMO-0002",
        ),
        ("<cpf:codePaysNaissance>341</cpf:codePaysNaissance>", "", "DEMO-0002"),
        (
            "<cpf:libelleCommuneNaissance>Le Mans</cpf:libelleCommuneNaissance>",
            "<cpf:libelleCommuneNaissance>Le Mans</cpf:libelleCommuneNaissance>"
            "<cpf:codePaysNaissance>181</cpf:codePaysNaissance>",
            "DEMO-0001",
        ),
    ],
)
def test_country_code(demo, old, new, who):
    edit(demo, old, new)
    report = validate_file(demo)
    issue = only(report, "country-code")
    assert issue.technical_id == who and not report.valid
    assert issue.line == line_of(demo, f">{who}<")


def test_award_before_july_2021_is_a_warning(tmp_path):
    p = dataclasses.replace(sample_passages()[0], award_date=dt.date(2021, 6, 30))
    path = write([p, sample_passages()[1]], tmp_path)
    report = validate_file(path)
    issue = only(report, "award-before-2021-07")
    assert report.valid and report.warnings == [issue] and report.errors == []
    assert issue.technical_id == "DEMO-0001"
    assert points_at(path, issue, "dateDebutValidite")


# --------------------------------------------------------------------------------------
# Files that are not XML
# --------------------------------------------------------------------------------------


def test_comment_with_double_dash_is_not_well_formed(demo):
    edit(demo, "<cpf:certifications>", "<!-- batch -- 2025 --><cpf:certifications>")
    report = validate_file(demo)
    issue = only(report, "well-formed")
    assert not report.valid
    assert issue.line == line_of(demo, "<!-- batch")
    assert issue.column and issue.column > 1
    assert "--" in issue.explanation_fr and "'--'" in issue.explanation_en


def test_truncated_file_is_not_well_formed(demo):
    data = demo.read_bytes()
    cut = data.index(b"<cpf:nomNaissance>LE GOFF")
    demo.write_bytes(data[:cut])
    report = validate_file(demo)
    issue = only(report, "well-formed")
    assert issue.technical_id == "DEMO-0004"
    assert issue.line == line_of(demo, "DEMO-0004")
    assert "tronqué" in issue.explanation_fr and "truncated" in issue.explanation_en
    assert report.passages == 3
    assert report.id_flux == "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("data", [b"", b"not xml at all", b"\xff\xfe<a/>"])
def test_garbage_never_raises(tmp_path, data):
    path = tmp_path / "garbage.xml"
    path.write_bytes(data)
    report = validate_file(path)
    assert [i.rule for i in report.errors] == ["well-formed"]


def test_entities_are_not_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    text = SAMPLE.read_text(encoding="utf-8").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE x [<!ENTITY s SYSTEM "{secret}">]>',
    )
    text = text.replace("<cpf:verbatim>TOSA</cpf:verbatim>", "<cpf:verbatim>&s;</cpf:verbatim>", 1)
    path = tmp_path / "xxe.xml"
    path.write_text(text, encoding="utf-8")
    report = validate_file(path)
    assert not report.valid  # a flux carries no entity
    assert all("TOPSECRET" not in i.message for i in report.issues)


# --------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------

E = "Element '{urn:cdc:cpf:pc5:schema:1.0.0}"


@pytest.mark.parametrize(
    ("message", "element", "fr_word", "en_word"),
    [
        (
            E + "sexe': [facet 'enumeration'] The value 'ZORGLUB' is not an element of the set "
            "{'M', 'F'}.",
            "sexe",
            "liste",
            "list",
        ),
        (
            E + "horodatage': [facet 'pattern'] The value 'ZORGLUB' is not accepted by the "
            "pattern '(19|20)'.",
            "horodatage",
            "format",
            "format",
        ),
        (
            E + "idClient': [facet 'length'] The value has a length of '7'; this differs from the "
            "allowed length of '8'.",
            "idClient",
            "exactement 8",
            "exactly 8",
        ),
        (
            E + "prenom2': [facet 'minLength'] The value has a length of '0'; this underruns the "
            "allowed minimum length of '1'.",
            "prenom2",
            "omis",
            "left out",
        ),
        (
            E + "nomNaissance': [facet 'maxLength'] The value has a length of '61'; this exceeds "
            "the allowed maximum length of '60'.",
            "nomNaissance",
            "au plus 60",
            "at most 60",
        ),
        (
            E + "moisNaissance': [facet 'maxInclusive'] The value '13' is greater than the "
            "maximum value allowed ('12').",
            "moisNaissance",
            "12",
            "12",
        ),
        (
            E + "passageCertification': Missing child element(s). Expected is ( "
            "{urn:cdc:cpf:pc5:schema:1.0.0}scoring ).",
            "passageCertification",
            "scoring",
            "scoring",
        ),
        (
            E + "coucou': This element is not expected. Expected is ( "
            "{urn:cdc:cpf:pc5:schema:1.0.0}verbatim ).",
            "coucou",
            "verbatim",
            "verbatim",
        ),
        (
            E + "donneeCertifiee': 'ZORGLUB' is not a valid value of the atomic type 'xs:boolean'.",
            "donneeCertifiee",
            "true ou false",
            "true or false",
        ),
        (
            E + "dateDebutValidite': 'ZORGLUB' is not a valid value of the local atomic type.",
            "dateDebutValidite",
            "type",
            "type",
        ),
        (E + "prenom2': The element is not 'nillable'.", "prenom2", "nil", "nil"),
        (
            E + "nomUsage': The element cannot be 'nilled' because there is character or element "
            "content.",
            "nomUsage",
            "nil",
            "nil",
        ),
        (E + "x': something libxml2 says rarely.", "x", "XSD", "XSD"),
    ],
)
def test_explain(message, element, fr_word, en_word):
    fr, en = explain(message, None)
    assert f"« {element} »" in fr and f"'{element}'" in en
    assert fr_word in fr and en_word in en
    assert fr != en
    assert "ZORGLUB" not in fr + en
    assert explain(message, "autre")[0] != fr  # the given element name wins


# --------------------------------------------------------------------------------------
# Streaming: imports and memory
# --------------------------------------------------------------------------------------


def test_lxml_is_not_imported_with_the_module():
    code = "import sys, cpf_deposit.flux.validator; print('lxml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from cpf_deposit.flux.validator import validate_file

    small, big, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    assert validate_file(small).valid  # warm up: lxml, schema, caches
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = validate_file(big)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"valid": report.valid, "passages": report.passages,
                      "growth_mb": (after - before) / 1024, "size": big.stat().st_size}))
    """
)


def test_memory_stays_flat_on_a_large_file(tmp_path):
    """~100 000 passages (~120 MB): a whole tree would need more than 1 GB."""
    n = 100_000
    small = write(sample_passages(), tmp_path / "small")
    lines = small.read_bytes().splitlines(keepends=True)
    head = b"".join(lines[:9])  # blocks 1-4 up to the first passageCertifications
    passage = next(line for line in lines if b"DEMO-0001" in line)
    assert head.endswith(b"<cpf:passageCertifications>\n")
    big = tmp_path / "big.xml"
    with open(big, "wb") as fh:
        fh.write(head)
        for i in range(n):
            fh.write(passage.replace(b"DEMO-0001", b"BIG-%07d" % i))
        fh.write(
            b"</cpf:passageCertifications></cpf:certification>\n</cpf:certifications>\n"
            b"</cpf:certificateur></cpf:certificateurs>\n</cpf:emetteur>\n</cpf:flux>\n"
        )
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(small), str(big), str(n)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    probe = json.loads(out.stdout)
    assert probe["valid"] and probe["passages"] == n
    assert probe["size"] > 100_000_000
    assert probe["growth_mb"] < 150, probe

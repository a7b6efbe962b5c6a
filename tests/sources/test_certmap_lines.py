"""The certification map, line by line: a bad line refuses its diploma version only.

A malformed line never refuses the whole mapping: its diploma version's awards (in the
years it covers) are refused with a French reason naming the line, reported by the
extraction (``certification_map_line_invalid``) and quarantined by the identity gate
(R10D, apart from R10C "unmapped"); the other lines apply. A code without its RNCP/RS
prefix is refused, never completed.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3

import pytest

from cpf_deposit import errors
from cpf_deposit.quality.gate import run_gate
from cpf_deposit.quality.prepare import prepare
from cpf_deposit.quality.rules import RULE_BY_ID, evaluate_all
from cpf_deposit.sources.certmap import CertificationMap, CertificationMapError
from cpf_deposit.sources.extract import extract
from tests.quality.conftest import TODAY, canonical
from tests.sources.source_helpers import PERSON, jury, result

HEADER = "diploma_code,diploma_version,first_year,last_year,certification_type,certification_code"
GOOD = "LINFO,1,,,RNCP,RNCP24514"

# (case, bad line, diploma version it names, French words of the reason)
BAD_LINES = [
    ("type and prefix disagree", "DUCNUM,1,,,RS,RNCP38123", ("DUCNUM", "1"),
     "type RS mais code RNCP38123"),
    ("RNCP typed, RS code", "DUCNUM,1,,,RNCP,RS5875", ("DUCNUM", "1"),
     "type RNCP mais code RS5875"),
    ("code without prefix", "CLES,1,,,RS,5441", ("CLES", "1"), "sans préfixe"),
    ("non-numeric first year", "MX,1,20x2,2024,RNCP,RNCP1", ("MX", "1"),
     "année de début « 20x2 » illisible"),
    ("two-digit last year", "MX,1,2021,24,RNCP,RNCP1", ("MX", "1"),
     "année de fin « 24 » illisible"),
    ("first year after last", "MX,1,2024,2022,RNCP,RNCP1", ("MX", "1"),
     "année de début 2024 après"),
    ("empty code", "EMPTY,1,,,RNCP,", ("EMPTY", "1"), "code de certification absent"),
    ("empty type", "EMPTY,1,,,,RNCP12", ("EMPTY", "1"), "type de certification absent"),
    ("unknown type", "CQP,1,,,CQP,CQP12", ("CQP", "1"), "type « CQP » inconnu"),
    ("space in code", "SP,1,,,RNCP,RNCP 123", ("SP", "1"), "mal formé"),
    ("unknown extra column", "MORE,1,,,RNCP,RNCP3,oops", ("MORE", "1"),
     "7 valeurs pour 6 colonnes"),
    ("missing column", "SHORT,1,2021,RNCP,RNCP3", ("SHORT", "1"), "5 valeurs pour 6 colonnes"),
]  # fmt: skip


def write(tmp_path, *lines, header=HEADER, name="certification_map.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "version", "words"), [c[1:] for c in BAD_LINES],
                         ids=[c[0] for c in BAD_LINES])  # fmt: skip
def test_a_bad_line_refuses_its_diploma_version_only(tmp_path, line, version, words):
    cmap = CertificationMap.from_csv(write(tmp_path, GOOD, line, "LDROIT,1,,,RNCP,RNCP24438"))
    assert cmap.lookup("LINFO", "1", 2023).certification_code == "RNCP24514"
    assert cmap.lookup("LDROIT", "1", 2023).certification_code == "RNCP24438"  # after it
    for year in (2021, 2023, None):
        assert cmap.lookup(*version, year) is None
        bad = cmap.refusal(*version, year)
        assert bad is not None and bad.lines == (3,)
        assert bad.reason.startswith("certification_map.csv, ligne 3 : ")
        assert words in bad.reason
    assert [b.lines for b in cmap.bad_lines] == [(3,)]
    assert cmap.refusal("LINFO", "1", 2023) is None


def test_a_code_without_prefix_is_never_completed(tmp_path):
    cmap = CertificationMap.from_csv(write(tmp_path, "CLES,1,,,RS,5441", "CLES,2,,,RS,RS5441"))
    assert cmap.lookup("CLES", "1", 2023) is None
    assert cmap.lookup("CLES", "2", 2023).certification_code == "RS5441"  # written in full
    assert cmap.lookup("CLES", "2", 2023).line == 3


def test_a_bad_line_with_readable_years_refuses_those_years_only(tmp_path):
    cmap = CertificationMap.from_csv(
        write(tmp_path, "LDROIT,1,2016,2022,RNCP,RNCP24438", "LDROIT,1,2023,,RS,RNCP39869")
    )
    assert cmap.lookup("LDROIT", "1", 2022).certification_code == "RNCP24438"
    assert cmap.lookup("LDROIT", "1", 2023) is None
    assert cmap.refusal("LDROIT", "1", 2022) is None
    assert cmap.refusal("LDROIT", "1", 2030).lines == (3,)


def test_unreadable_years_refuse_every_year_of_the_version(tmp_path):
    cmap = CertificationMap.from_csv(
        write(tmp_path, "LDROIT,1,2016,2022,RNCP,RNCP24438", "LDROIT,1,2023,2O25,RNCP,RNCP39869")
    )
    # the bad line may have been meant to cover 2016-2022 too: nothing of the version is sent
    assert cmap.lookup("LDROIT", "1", 2020) is None
    assert cmap.refusal("LDROIT", "1", 2020).lines == (3,)


@pytest.mark.parametrize(
    ("lines", "expected", "refused"),
    [
        # the same line twice: the same answer either way, nothing refused
        (["LDROIT,1,2016,2023,RNCP,RNCP24438", "LDROIT,1,2016,2023,RNCP,RNCP24438"],
         {2016: "RNCP24438", 2023: "RNCP24438"}, {}),
        # overlapping years, same certification: harmless
        (["LDROIT,1,2016,2023,RNCP,RNCP24438", "LDROIT,1,2020,,rncp,rncp24438"],
         {2016: "RNCP24438", 2021: "RNCP24438", 2030: "RNCP24438"}, {}),
        # overlapping years, different certifications: the common years are refused
        (["LDROIT,1,2016,2023,RNCP,RNCP24438", "LDROIT,1,2023,,RNCP,RNCP39869"],
         {2022: "RNCP24438", 2024: "RNCP39869"}, {2023: (2, 3)}),
        # a duplicated line with another code, no years: every year is ambiguous
        (["LDROIT,1,,,RNCP,RNCP24438", "LDROIT,1,,,RNCP,RNCP39869"],
         {}, {2016: (2, 3), 2030: (2, 3), None: (2, 3)}),
        # another diploma version is another key
        (["LDROIT,1,,,RNCP,RNCP24438", "LDROIT,2,,,RNCP,RNCP39869"],
         {2020: "RNCP24438"}, {}),
    ],
    ids=["duplicate", "same certification", "different certifications", "no years", "versions"],
)  # fmt: skip
def test_overlapping_lines(tmp_path, lines, expected, refused):
    cmap = CertificationMap.from_csv(write(tmp_path, *lines))
    for year, code in expected.items():
        assert cmap.lookup("LDROIT", "1", year).certification_code == code
    for year, numbers in refused.items():
        assert cmap.lookup("LDROIT", "1", year) is None
        bad = cmap.refusal("LDROIT", "1", year)
        assert bad.lines == numbers
        assert "lignes 2 et 3" in bad.reason and "deux certifications différentes" in bad.reason
    assert bool(cmap.bad_lines) == bool(refused)


def test_a_line_without_diploma_code_is_reported_and_blocks_nothing(tmp_path):
    cmap = CertificationMap.from_csv(write(tmp_path, ",1,,,RNCP,RNCP2", GOOD))
    assert [b.lines for b in cmap.bad_lines] == [(2,)]
    assert cmap.bad_lines[0].diploma_code is None
    assert "code diplôme absent" in cmap.bad_lines[0].reason
    assert cmap.lookup("LINFO", "1", 2023) is not None


def test_line_numbers_are_the_file_lines(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text(
        f'{HEADER}\n\n{GOOD}\n,,,,,\n"MULTI\nLINE",1,,,RNCP,RNCP1\nBAD,1,,,RS,12\n',
        encoding="utf-8",
    )
    cmap = CertificationMap.from_csv(path)
    assert [b.lines for b in cmap.bad_lines] == [(7,)]  # blank lines and a quoted newline
    assert "map.csv, ligne 7" in cmap.bad_lines[0].reason


def test_an_unknown_header_column_is_ignored_when_every_column_is_there(tmp_path):
    cmap = CertificationMap.from_csv(
        write(tmp_path, "LINFO,1,,,RNCP,RNCP24514,Licence informatique", header=f"{HEADER},libelle")
    )
    assert cmap.lookup("LINFO", "1", 2023).certification_code == "RNCP24514"
    assert cmap.bad_lines == []


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("diploma_code,diploma_version,certification_type",
         r"lacks the column\(s\) certification_code"),
        ("cod_dip,certif_code", "certification_type"),
        # first_yaer: a misspelt column would silently extend the line to every year
        ("diploma_code,diploma_version,first_yaer,last_year,certification_type,"
         "certification_code", "first_yaer"),
    ],
)  # fmt: skip
def test_a_header_the_lines_cannot_be_read_by_refuses_the_file(tmp_path, header, words):
    with pytest.raises(CertificationMapError, match=words) as caught:
        CertificationMap.from_csv(write(tmp_path, GOOD, header=header))
    assert isinstance(caught.value, errors.ConfigError) and caught.value.exit_code == 2


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes(f"{HEADER}\nLIC,1,,,RNCP,RNCP1\n".encode() + "É,1,,,RS,RS1\n".encode("cp1252"))
    with pytest.raises(CertificationMapError, match="UTF-8"):
        CertificationMap.from_csv(path)


def test_the_table_is_read_line_by_line_too():
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE cdc_vdi_certif_map (cod_dip TEXT, cod_vrs_vdi INTEGER, daa_deb TEXT, "
        "daa_fin TEXT, certif_type TEXT, certif_code TEXT)"
    )
    conn.executemany(
        "INSERT INTO cdc_vdi_certif_map VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("LINFO", 1, "2016", None, "RNCP", "RNCP24514"),
            ("DUCNUM", 1, "2020", None, "RS", "5441"),
        ],
    )
    cmap = CertificationMap.from_cursor(conn.cursor())
    assert cmap.lookup("LINFO", "1", 2023).certification_code == "RNCP24514"
    assert cmap.lookup("DUCNUM", "1", 2023) is None
    reason = cmap.refusal("DUCNUM", "1", 2023).reason
    assert reason.startswith("table cdc_vdi_certif_map, enregistrement 1 : ")


# --------------------------------------------------------------------------------------
# Extraction: the rest goes through, the refused version is reported with its line
# --------------------------------------------------------------------------------------


def _extract(tmp_path, conn_id, cmap_path):
    out = tmp_path / "out.parquet"
    import datetime as dt

    from cpf_deposit.passage_io import read_passages

    report = extract(
        "apogee", conn_id, dt.date(2021, 7, 1), dt.date(2026, 12, 1), out,
        id_key=bytes(32), certification_map=cmap_path,
    )  # fmt: skip
    with report.issues_path.open(encoding="utf-8") as fh:
        issues = list(csv.DictReader(fh))
    return report, list(read_passages(out)), issues


def test_the_extraction_sends_the_rest_and_reports_the_bad_line(tmp_path, apogee_conn):
    persons = [{**PERSON, "cod_ind": i, "cod_etu": 21000000 + i, "cod_nne_ind": f"12345678{i}A"}
               for i in (1, 2, 3)]  # fmt: skip
    results = [result(cod_ind=1), result(cod_ind=2, dip="DUPHOT"), result(cod_ind=3, dip="DUPHOT")]
    conn = apogee_conn(persons, results, [jury(), jury(dip="DUPHOT")])
    cmap = write(tmp_path, GOOD, "DUPHOT,1,,,RS,RNCP38123", "OTHER,1,,,RS,5441")
    report, passages, issues = _extract(tmp_path, conn, cmap)
    assert [p.source_record_key for p in passages] == ["1-LINFO-1"]
    assert (report.rows, report.passages, report.errors) == (3, 1, 1)
    (refused,) = [i for i in issues if i["severity"] == "error"]
    assert refused["code"] == "certification_map_line_invalid"
    assert refused["source_record_key"] == "DUPHOT-1-2022"
    assert "certification_map.csv, ligne 3" in refused["message"]
    assert "type RS mais code RNCP38123" in refused["message"]
    assert "2 passage(s)" in refused["message"]
    # the line no award depends on is listed, as a warning, so it is fixed in time
    (unused,) = [i for i in issues if i["severity"] == "warning"]
    assert unused["code"] == "certification_map_line_invalid"
    assert unused["source_record_key"] == "certification_map-4"
    assert "ligne 4" in unused["message"] and "sans préfixe" in unused["message"]
    assert report.by_code["diploma_unmapped"] == 0


# --------------------------------------------------------------------------------------
# Identity gate: R10D (bad line, with the line in the fix), R10C (no line at all)
# --------------------------------------------------------------------------------------


def _rows():
    own = {"certification_type": None, "certification_code": None}
    return canonical(
        {**own, "diploma_code": "LINFO"},
        {**own, "diploma_code": "DUCNUM"},
        {**own, "diploma_code": "NOWHERE"},
        {},  # the source's own certification: the map does not apply
    )


def test_the_gate_quarantines_a_bad_line_apart_from_unmapped(tmp_path):
    cmap = CertificationMap.from_csv(write(tmp_path, GOOD, "DUCNUM,1,,,RS,RNCP38123"))
    fired = evaluate_all(prepare(_rows(), today=TODAY, certification_map=cmap))
    assert fired["R10D"].tolist() == [False, True, False, False]
    assert fired["R10C"].tolist() == [False, False, True, False]
    result = run_gate(_rows(), today=TODAY, certification_map=cmap, use_gx=False)
    assert result.verdicts["verdict"].tolist()[1:3] == ["BLOCK", "BLOCK"]
    (finding,) = result.findings[result.findings["rule_id"] == "R10D"].itertuples()
    assert finding.source_record_key == "2-LDROIT-1"
    assert finding.message == RULE_BY_ID["R10D"].message
    assert "certification_map.csv, ligne 3 : type RS mais code RNCP38123" in finding.fix


def test_the_gate_through_great_expectations_agrees(tmp_path):
    cmap = CertificationMap.from_csv(write(tmp_path, GOOD, "DUCNUM,1,,,RS,RNCP38123"))
    gx = run_gate(_rows(), today=TODAY, certification_map=cmap)
    direct = run_gate(_rows(), today=TODAY, certification_map=cmap, use_gx=False)
    assert gx.verdicts["rule_ids"].tolist() == direct.verdicts["rule_ids"].tolist()
    assert "R10D" in gx.verdicts["rule_ids"].iloc[1]


# --------------------------------------------------------------------------------------
# cpf-deposit check reads the config's map
# --------------------------------------------------------------------------------------


def _config(tmp_path, *sources: tuple[str, str, str | None]):
    from importlib import resources

    text = (resources.files("cpf_deposit") / "data" / "institution.example.yaml").read_text(
        encoding="utf-8"
    )
    head = text[: text.index("sources:")]
    body = ["sources:"]
    for name, system, cmap in sources:
        body += [f"  {name}:", f"    system: {system}", "    conn_id: no_such_conn"]
        if cmap is not None:
            body.append(f"    certification_map: {cmap}")
    path = tmp_path / "institution.yaml"
    path.write_text(head + "\n".join(body) + "\n", encoding="utf-8")
    return path


def _check(tmp_path, config, *extra):
    from cpf_deposit.commands import check

    src = tmp_path / "rows.parquet"
    _rows().to_parquet(src)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    check.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["--config", str(config), "check", str(src), "--out", str(tmp_path / "out"),
         "--today", TODAY.isoformat(), *extra]
    )  # fmt: skip
    args.func(args)
    import pandas as pd

    return pd.read_parquet(tmp_path / "out" / "verdicts.parquet")["rule_ids"].tolist()


def test_check_reads_the_config_map(tmp_path, isolated_home):
    write(tmp_path, GOOD, "DUCNUM,1,,,RS,RNCP38123")
    config = _config(tmp_path, ("apogee", "apogee", "certification_map.csv"))  # relative
    rules = _check(tmp_path, config)
    assert "R10C" not in rules[0] and "R10D" not in rules[0]
    assert "R10D" in rules[1] and "R10C" not in rules[1]
    assert "R10C" in rules[2]


def test_check_picks_the_source_or_asks_for_it(tmp_path, isolated_home):
    write(tmp_path, GOOD, "DUCNUM,1,,,RS,RNCP38123")
    config = _config(
        tmp_path,
        ("apogee", "apogee", "certification_map.csv"),
        ("apogee_ufr", "apogee", "missing.csv"),
        ("pegase", "pegase", None),
    )
    from cpf_deposit.cli import UsageError

    with pytest.raises(UsageError, match="give --source"):
        _check(tmp_path, config)
    with pytest.raises(UsageError, match="no such source"):
        _check(tmp_path, config, "--source", "geode")
    assert "R10D" in _check(tmp_path, config, "--source", "apogee")[1]
    with pytest.raises(CertificationMapError, match="does not exist"):  # exit 2, one line
        _check(tmp_path, config, "--source", "apogee_ufr")
    # no file: the source's table, through its connection, as the extraction reads it
    with pytest.raises(errors.ConfigError, match="no_such_conn"):
        _check(tmp_path, config, "--source", "pegase")
    # --certification-map overrides the config
    other = write(tmp_path, GOOD, "DUCNUM,1,,,RS,RS38123", name="other.csv")
    assert "R10" not in _check(tmp_path, config, "--certification-map", str(other))[1]


def test_the_cli_says_it_in_one_line_and_exits_2(tmp_path, isolated_home, capsys):
    from cpf_deposit.cli import main

    src = tmp_path / "rows.parquet"
    _rows().to_parquet(src)
    bad = tmp_path / "bad.csv"
    bad.write_text("diploma_code,certification_type\nX,RNCP\n", encoding="utf-8")
    code = main(["check", str(src), "--out", str(tmp_path / "o"), "--certification-map", str(bad)])
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err.strip().splitlines()) == 1 and "certification_code" in captured.err
    assert "Traceback" not in captured.err


# --------------------------------------------------------------------------------------
# A whole run: one bad line of the source's table, the run goes to the end
# --------------------------------------------------------------------------------------


def test_a_run_with_a_bad_map_line_stages_the_rest(tmp_path, isolated_home, monkeypatch):
    import datetime as dt

    import pandas as pd

    from cpf_deposit.config import load_config
    from cpf_deposit.demo.build import write_demo
    from cpf_deposit.flux.reader import iter_flux
    from cpf_deposit.pipeline import Window, run_pipeline

    db = write_demo(tmp_path / "demo", 300, seed=3).apogee
    with sqlite3.connect(db) as conn:  # LINFO typed RS with its RNCP code
        conn.execute("UPDATE cdc_vdi_certif_map SET certif_type = 'RS' WHERE cod_dip = 'LINFO'")
        linfo = conn.execute(
            "SELECT COUNT(*) FROM resultat_vdi WHERE cod_dip = 'LINFO' AND cod_adm = '1'"
        ).fetchone()[0]
    assert linfo > 0
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{db}")
    config = load_config()
    window = Window(dt.date(2021, 7, 1), dt.date(2026, 12, 1))
    out = run_pipeline(config, "apogee", window, today=dt.date(2026, 11, 30))
    refused = out["gate"]["fired"].get("R10D", 0)
    assert refused > 0 and out["stage"]["staged"]
    sent = [
        p for f in out["stage"]["staged"] for _, p in iter_flux(f"{f['outbox']}/{f['file_name']}")
    ]
    codes = {p.certification_code for p in sent}  # LINFO is RNCP24514 in the demo
    assert codes and not codes & {"RNCP24514", "RS24514"}
    workbook = pd.read_csv(
        out["gate"]["quarantine"]["quarantine_csv"], sep=";", dtype="str", encoding="utf-8-sig"
    )
    fixes = workbook[workbook.apply(lambda r: "R10D" in str(r.tolist()), axis=1)]
    assert len(fixes) == refused
    assert fixes.apply(lambda r: "table cdc_vdi_certif_map, enregistrement" in str(r.tolist()),
                       axis=1).all()  # fmt: skip
    issues = pd.read_csv(out["extract"]["issues"], dtype="str")
    assert "certification_map_line_invalid" in set(issues["code"])

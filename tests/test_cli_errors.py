"""Errors at the edge (issue 13): every expected failure is one line, the right exit code.

Each case ended in a Python traceback (exit 1) or with the wrong exit code before:
a bad option, an unusable file (Latin-1, corrupt or empty Parquet, a bad XSD, a
corrupt ledger), an unwritable folder, a read-only or full outbox, a missing driver,
an unreachable database. Exit 2 for usage, configuration and environment, one line on
stderr, no traceback (unless ``--debug``), never a personal value. Also: a flux with a
DOCTYPE or a processing instruction is invalid (exit 1), wherever it stands.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
from pathlib import Path

import pytest

from cpf_deposit.cli import main
from tests.conftest import OFFICIAL_SAMPLE
from tests.test_files import full_disk, read_only, without_logging_noise

USAGE = "stopped, configuration or usage error"


@pytest.fixture(autouse=True, scope="module")
def _airflow_logging_before_capsys():
    """Airflow sets its log handlers up on first use, on the ``sys.stderr`` of that
    moment: let that be pytest's own stream, not one test's captured (then closed) one,
    so that only what the command itself prints lands in ``capsys``."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        BaseHook.get_connection("cpf_no_such_connection_for_logging_setup")


def _one_line(capsys, code: int, got: int) -> tuple[str, str]:
    out, err = capsys.readouterr()
    err = without_logging_noise(err)
    assert got == code, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in out + err
    return lines[0], out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# Options and input files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--source", "unknown", "--academic-year", "2023"], "--source unknown"),
        (["run", "--source", "apogee", "--academic-year", "2010"], "--academic-year 2010"),
        (["run", "--source", "apogee", "--academic-year", "99999"], "--academic-year 99999"),
        (["run", "--source", "apogee", "--from", "2019-01-01", "--to", "2020-01-01"], "before"),
    ],
    ids=["unknown-source", "year-2010", "year-99999", "window-before-2021"],
)
def test_run_options_exit_2(isolated_home, capsys, argv, expected):
    line, out = _one_line(capsys, 2, main(argv))
    assert expected in line and out.strip().endswith(USAGE)
    assert not (isolated_home / "var" / "ledger.db").exists()  # refused before any run


def test_a_latin1_config_names_the_file(isolated_home, tmp_path, capsys):
    from tests.ledger_helpers import write_config

    path = write_config(tmp_path / "var")
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    line, _ = _one_line(capsys, 2, main(["--config", str(path), "report"]))
    assert str(path) in line and "UTF-8" in line


LATIN1_CSV = "birth_name;first_name_1\nHÉLÈNE-ŒUVRE;Zoé\n".replace("Œ", "OE").encode("latin-1")


@pytest.mark.parametrize("command", ["build", "check"])
def test_a_latin1_csv_is_one_line_without_its_values(isolated_home, tmp_path, capsys, command):
    src = tmp_path / "passages.csv"
    src.write_bytes(LATIN1_CSV)
    argv = [command, str(src), "--out", str(tmp_path / "out")]
    line, out = _one_line(capsys, 2, main(argv))
    assert str(src) in line and "UTF-8" in line
    for value in ("HÉLÈNE", "H\ufffdL", "Zo", "OEUVRE"):
        assert value not in line + out


@pytest.mark.parametrize("content", [b"", b"not a parquet file at all"], ids=["empty", "corrupt"])
@pytest.mark.parametrize("command", ["build", "check"])
def test_an_empty_or_corrupt_parquet_is_one_line(isolated_home, tmp_path, capsys, command, content):
    src = tmp_path / "passages.parquet"
    src.write_bytes(content)
    line, _ = _one_line(capsys, 2, main([command, str(src), "--out", str(tmp_path / "out")]))
    assert str(src) in line


@pytest.mark.parametrize(
    "xsd",
    [b"not xml", b"<x/>", b'<?xml version="1.0"?><xs:schema xmlns:xs="bad"'],
    ids=["not-xml", "not-a-schema", "truncated"],
)
def test_a_bad_xsd_is_one_line(tmp_path, capsys, xsd):
    path = tmp_path / "bad.xsd"
    path.write_bytes(xsd)
    line, _ = _one_line(capsys, 2, main(["validate", str(OFFICIAL_SAMPLE), "--xsd", str(path)]))
    assert str(path) in line and "not a usable XSD" in line


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_an_s3_inbox_without_its_driver_is_one_line(isolated_home, capsys):
    line, _ = _one_line(capsys, 2, main(["ingest-receipts", "s3://cdc-bucket/inbox"]))
    assert "s3fs" in line


def test_debug_shows_the_traceback(isolated_home, tmp_path):
    src = tmp_path / "passages.parquet"
    src.write_bytes(b"")
    with pytest.raises(Exception, match="Parquet"):
        main(["--debug", "build", str(src)])


# --------------------------------------------------------------------------------------
# Folders, the ledger, the connections
# --------------------------------------------------------------------------------------


def _a_file(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


@pytest.mark.parametrize("command", ["build", "report"])
def test_an_unwritable_out_folder_is_one_line(isolated_home, tmp_path, capsys, command):
    from cpf_deposit.passage_io import write_passages
    from cpf_deposit.samples import sample_passages

    out = _a_file(tmp_path) / "out"
    argv = ["report", "--out", str(out)]
    if command == "build":
        src = tmp_path / "passages.parquet"
        write_passages(sample_passages(), src)
        argv = ["build", str(src), "--out", str(out)]
    line, _ = _one_line(capsys, 2, main(argv))
    assert str(tmp_path / "a-file") in line


def test_an_unwritable_base_dir_is_one_line(tmp_path, capsys):
    from tests.ledger_helpers import write_config

    path = write_config(tmp_path / "cfg")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(str(tmp_path / "cfg"), str(_a_file(tmp_path) / "var")))
    line, _ = _one_line(capsys, 2, main(["--config", str(path), "report"]))
    assert str(tmp_path / "a-file") in line


def test_a_corrupt_ledger_is_one_line(isolated_home, capsys):
    ledger = isolated_home / "var" / "ledger.db"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"this is not a SQLite database, " * 10)
    line, _ = _one_line(capsys, 2, main(["report"]))
    assert "not a database" in line


def test_an_unreachable_ledger_is_one_line(isolated_home, monkeypatch, capsys):
    port = _closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_CPF_LEDGER", f"postgres://cpf:s3cr3t-pw@127.0.0.1:{port}/l")
    line, out = _one_line(capsys, 2, main(["report"]))
    assert "s3cr3t-pw" not in line + out and "try again" in out


def test_an_unopenable_source_is_one_line(isolated_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite:///{tmp_path}/missing/apogee.sqlite")
    argv = ["run", "--source", "apogee", "--academic-year", "2023"]
    line, _ = _one_line(capsys, 2, main(argv))
    assert "database" in line


def test_a_source_connection_refused_is_one_line(isolated_home, monkeypatch, capsys):
    port = _closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"postgres://apo:s3cr3t-pw@127.0.0.1:{port}/a")
    argv = ["run", "--source", "apogee", "--academic-year", "2023"]
    line, out = _one_line(capsys, 2, main(argv))
    assert "s3cr3t-pw" not in line + out


# --------------------------------------------------------------------------------------
# A run whose outbox is read-only or full: one line, nothing half-staged
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    from cpf_deposit.demo.build import write_demo

    return write_demo(tmp_path_factory.mktemp("demo"), 60, seed=5).apogee


@pytest.fixture
def demo_home(demo_db, isolated_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_APOGEE_DB", f"sqlite://{demo_db}")
    outbox = isolated_home / "var" / "outbox"
    outbox.mkdir(parents=True)
    return outbox


RUN = ["run", "--source", "apogee", "--from", "2021-07-01", "--to", "2026-12-01"]


def test_a_read_only_outbox_is_one_line(demo_home, monkeypatch, capsys):
    read_only(monkeypatch, demo_home)
    line, _ = _one_line(capsys, 2, main(RUN))
    monkeypatch.undo()
    assert str(demo_home) in line and os.strerror(errno.EROFS) in line
    assert os.listdir(demo_home) == []


def test_a_full_outbox_is_one_line_and_leaves_nothing(demo_home, monkeypatch, capsys):
    full_disk(monkeypatch, lambda p: p.startswith(str(demo_home)))
    line, out = _one_line(capsys, 2, main(RUN))
    monkeypatch.undo()
    assert "No space left on device" in line and "try again" in out
    assert os.listdir(demo_home) == []  # no hidden .part, no orphan manifest


# --------------------------------------------------------------------------------------
# A flux with a DOCTYPE or a processing instruction: invalid, wherever, whatever encoding
# --------------------------------------------------------------------------------------

SAMPLE = OFFICIAL_SAMPLE.read_text(encoding="utf-8") if OFFICIAL_SAMPLE.is_file() else ""
DECLARATION_END = "?>"


def _flux(insert: str = "", *, after_root: str = "", inside: str = "") -> str:
    head, _, rest = SAMPLE.partition(DECLARATION_END)
    text = head + DECLARATION_END + insert + rest
    if inside:
        text = text.replace("<cpf:passageCertification>", "<cpf:passageCertification>" + inside, 1)
    return text + after_root


LONG = "\n<!--" + "x" * 70_000 + "-->"
FLUXES = [
    ("unused-doctype", _flux("\n<!DOCTYPE cpf:flux>"), "utf-8"),
    ("external-dtd", _flux('\n<!DOCTYPE cpf:flux SYSTEM "http://example.invalid/f.dtd">'), "utf-8"),
    ("entity-declaration", _flux('\n<!DOCTYPE cpf:flux [<!ENTITY e "x">]>'), "utf-8"),
    ("doctype-after-64KB", _flux(LONG + "\n<!DOCTYPE cpf:flux>"), "utf-8"),
    ("doctype-utf16", _flux("\n<!DOCTYPE cpf:flux>"), "utf-16"),
    ("pi-in-prolog", _flux('\n<?xml-stylesheet href="x.xsl"?>'), "utf-8"),
    ("pi-in-a-passage", _flux(inside="<?php echo 1; ?>"), "utf-8"),
    ("pi-after-root", _flux(after_root="<?evil?>\n"), "utf-8"),
]


@pytest.mark.parametrize(("text", "encoding"), [f[1:] for f in FLUXES], ids=[f[0] for f in FLUXES])
def test_validate_refuses_doctype_and_processing_instructions(tmp_path, capsys, text, encoding):
    path = tmp_path / "flux.xml"
    if encoding != "utf-8":
        text = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
    path.write_bytes(text.encode(encoding))
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    issues = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(issues) == 1 and "unsafe-markup" in issues[0], out
    assert "DOCTYPE" in issues[0] and "Traceback" not in out + err
    assert out.strip().splitlines()[-1].endswith("1 invalid, do not deposit")


@pytest.mark.parametrize(("text", "encoding"), [f[1:] for f in FLUXES], ids=[f[0] for f in FLUXES])
def test_the_reader_and_the_gate_refuse_them_too(tmp_path, project_schema, text, encoding):
    from cpf_deposit.flux.gate import passes_xsd
    from cpf_deposit.flux.reader import UnsafeXmlError, iter_flux

    path = tmp_path / "flux.xml"
    if encoding != "utf-8":
        text = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
    path.write_bytes(text.encode(encoding))
    with pytest.raises(UnsafeXmlError):
        list(iter_flux(path))
    assert passes_xsd(path, project_schema)[0] is False


def test_the_plain_sample_is_still_valid(tmp_path, capsys):
    assert main(["validate", str(OFFICIAL_SAMPLE)]) == 0
    path = tmp_path / "utf16.xml"
    path.write_bytes(SAMPLE.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert main(["validate", str(path)]) == 0

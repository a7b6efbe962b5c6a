"""The error hierarchy: each class's kind, ``is_retryable`` on real failures, the CLI's exits."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from cpf_deposit import errors
from cpf_deposit.cli import main
from cpf_deposit.config import ConfigError
from cpf_deposit.errors import (
    CpfError,
    DataError,
    TransientError,
    UsageError,
    is_retryable,
)
from cpf_deposit.ledger.engine import LedgerConfigError, LedgerError
from cpf_deposit.ledger.status import ClaimLost
from cpf_deposit.passage_io import RowError
from cpf_deposit.pipeline import PipelineError
from cpf_deposit.receipts.ingest import ReceiptRefused
from cpf_deposit.receipts.parser import ReceiptError
from cpf_deposit.sources.certmap import CertificationMapError
from cpf_deposit.sources.extract import SourceError, SourceUnavailable

# class, its kind, the stdlib base it kept, retryable, CLI exit code
KINDS = [
    (ConfigError, errors.ConfigError, ValueError, False, 2),
    (UsageError, errors.UsageError, Exception, False, 2),
    (ReceiptError, DataError, ValueError, False, 1),
    (ReceiptRefused, DataError, ValueError, False, 1),
    (LedgerError, DataError, RuntimeError, False, 1),
    (LedgerConfigError, errors.ConfigError, RuntimeError, False, 2),
    (ClaimLost, DataError, RuntimeError, False, 1),
    (SourceError, errors.ConfigError, RuntimeError, False, 2),
    (SourceUnavailable, TransientError, RuntimeError, True, 2),
    (CertificationMapError, errors.ConfigError, ValueError, False, 2),
    (PipelineError, DataError, RuntimeError, False, 1),
    (RowError, DataError, ValueError, False, 1),
]


def _instance(cls):
    if cls is ConfigError:
        return cls("limits.max_file_bytes", "a positive whole number")
    if cls is RowError:
        return cls("birth_year", "expected a whole number")
    return cls("refused")


@pytest.mark.parametrize(("cls", "kind", "stdlib", "retryable", "code"), KINDS)
def test_every_error_class_has_its_kind(cls, kind, stdlib, retryable, code):
    exc = _instance(cls)
    assert isinstance(exc, CpfError)
    assert isinstance(exc, kind)
    assert isinstance(exc, stdlib)  # existing `except ValueError` code keeps working
    assert exc.retryable is retryable
    assert exc.exit_code == code
    assert is_retryable(exc) is retryable


def test_the_cli_usage_error_is_the_hierarchy_one():
    from cpf_deposit import cli

    assert cli.UsageError is UsageError


def test_subclasses_keep_their_parents_catch_clauses():
    assert issubclass(LedgerConfigError, LedgerError)
    assert issubclass(ClaimLost, LedgerError)
    assert issubclass(SourceUnavailable, SourceError)


# --------------------------------------------------------------------------------------
# is_retryable on real failures
# --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_database_unreachable_is_retryable():
    engine = sa.create_engine(
        f"postgresql+psycopg2://nobody:secret@127.0.0.1:{_closed_port()}/ledger",
        connect_args={"connect_timeout": 3},
    )
    with pytest.raises(sa_exc.OperationalError) as caught:
        engine.connect()
    assert is_retryable(caught.value) is True
    assert is_retryable(caught.value.orig) is True  # the driver's own error, unwrapped


def test_connection_refused_is_retryable():
    with socket.socket() as s, pytest.raises(ConnectionRefusedError) as caught:
        s.connect(("127.0.0.1", _closed_port()))
    assert is_retryable(caught.value) is True
    assert is_retryable(TimeoutError("timed out")) is True


def _locked(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_sqlite_database_is_locked_is_retryable(tmp_path):
    path = tmp_path / "ledger.db"
    holder = _locked(path)
    try:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as caught:
            other.execute("BEGIN IMMEDIATE")
        assert is_retryable(caught.value) is True
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        with pytest.raises(sa_exc.OperationalError) as wrapped, engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert "database is locked" in str(wrapped.value)
        assert is_retryable(wrapped.value) is True
        other.close()
        engine.dispose()
    finally:
        holder.close()


def test_sqlite_deterministic_errors_are_unknown(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute("SELECT * FROM no_such_table")
    assert is_retryable(caught.value) is None
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa_exc.OperationalError) as wrapped, engine.connect() as c:
        c.exec_driver_sql("SELECT * FROM no_such_table")
    assert is_retryable(wrapped.value) is None
    conn.close()
    engine.dispose()


def test_pool_timeout_is_retryable(tmp_path):
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'x.db'}",
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
    )
    with engine.connect(), pytest.raises(sa_exc.TimeoutError) as caught:
        engine.connect()
    assert is_retryable(caught.value) is True
    engine.dispose()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_is_retryable():
    with pytest.raises(OSError) as caught, open("/dev/full", "wb", buffering=0) as fh:
        fh.write(b"x")
    assert caught.value.errno == errno.ENOSPC
    assert is_retryable(caught.value) is True


def test_other_errors_are_unknown(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        (tmp_path / "missing").read_text()
    for exc in (caught.value, ValueError("x"), KeyError("x"), RuntimeError("x")):
        assert is_retryable(exc) is None


def test_a_wrapper_keeps_the_verdict_of_its_cause():
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("while reading the source") from inner
    except RuntimeError as outer:
        assert is_retryable(outer) is True
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise DataError("refused") from inner  # its own kind wins
    except DataError as outer:
        assert is_retryable(outer) is False


def test_source_connection_not_found_is_terminal():
    from cpf_deposit.sources.extract import connect

    with pytest.raises(SourceError) as caught:
        connect("cpf_no_such_connection")
    assert is_retryable(caught.value) is False
    assert not isinstance(caught.value, SourceUnavailable)


# --------------------------------------------------------------------------------------
# The command line: one line on stderr, the kind's exit code
# --------------------------------------------------------------------------------------


def _assert_one_error_line(capsys, code_text: str) -> tuple[str, str]:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err + out
    assert out.strip().splitlines()[-1].endswith(code_text)
    return lines[0], out


def test_cli_config_error_is_one_line_and_exit_2(isolated_home, tmp_path, capsys):
    bad = tmp_path / "institution.yaml"
    bad.write_text("cdc:\n  nature_deposant: QUELQU_UN\n", encoding="utf-8")
    assert main(["--config", str(bad), "build", "x.parquet"]) == 2
    line, _ = _assert_one_error_line(capsys, "stopped, configuration or usage error")
    assert "config key" in line


def test_cli_data_error_is_one_line_and_exit_1(isolated_home, tmp_path, monkeypatch, capsys):
    import cpf_deposit.flux.build as build

    def refuse(*args, **kwargs):
        raise PipelineError("flux invalid, nothing staged:\n2 errors\nline 12: idTechnique T1")

    monkeypatch.setattr(build, "build_from_file", refuse)
    src = tmp_path / "passages.csv"
    src.write_text("technical_id\n", encoding="utf-8")
    assert main(["build", str(src)]) == 1
    line, _ = _assert_one_error_line(capsys, "stopped, problem in the data")
    assert line == "error: flux invalid, nothing staged: / 2 errors / line 12: idTechnique T1"


def test_cli_unreachable_database_is_one_line_and_exit_2(
    isolated_home, tmp_path, monkeypatch, capsys
):
    import cpf_deposit.flux.build as build

    engine = sa.create_engine(
        f"postgresql+psycopg2://nobody:secret@127.0.0.1:{_closed_port()}/ledger",
        connect_args={"connect_timeout": 3},
    )

    def unreachable(*args, **kwargs):
        engine.connect()

    monkeypatch.setattr(build, "build_from_file", unreachable)
    src = tmp_path / "passages.csv"
    src.write_text("technical_id\n", encoding="utf-8")
    assert main(["build", str(src)]) == 2
    line, _ = _assert_one_error_line(capsys, "try again")
    assert "secret" not in line


def test_cli_lets_a_bug_show_its_traceback(isolated_home, tmp_path, monkeypatch):
    import cpf_deposit.flux.build as build

    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(build, "build_from_file", bug)
    src = tmp_path / "passages.csv"
    src.write_text("technical_id\n", encoding="utf-8")
    with pytest.raises(KeyError):
        main(["build", str(src)])

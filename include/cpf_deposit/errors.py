"""One error hierarchy: what is terminal, what may be retried, and the CLI's exit code.

Why: an Airflow task should fail at once on a deterministic refusal (invalid flux,
bad configuration), where a retry only delays the alert, and keep its retries for a
transient fault (database unreachable, lock timeout, disk full). The command line
needs the same split to choose its exit code. Every error class of the package
derives from :class:`CpfError`, most of them also from the stdlib class they had
before (``ValueError``, ``RuntimeError``), so existing ``except`` clauses still work.

Stdlib only, no Airflow: imported by the library, the CLI and the DAG tasks alike.
"""

from __future__ import annotations

import errno

EXIT_DATA = 1  # problems found in the data
EXIT_USAGE = 2  # usage, configuration or environment


class CpfError(Exception):
    """Root of the package's errors. ``retryable``: may the same call succeed later?"""

    retryable: bool = False
    exit_code: int = EXIT_DATA


class UsageError(CpfError):
    """A command or step was called with arguments it cannot work with."""

    exit_code = EXIT_USAGE


class ConfigError(CpfError):
    """The configuration (file, connection, mapping) is wrong: fix it, then run again."""

    exit_code = EXIT_USAGE


class DataError(CpfError):
    """The data is refused (invalid flux, a receipt that cannot be applied): retrying the
    same data gives the same answer."""

    exit_code = EXIT_DATA


class TransientError(CpfError):
    """The environment failed (database unreachable, lock timeout, disk full, a refused
    connection): the same call may succeed later."""

    retryable = True
    exit_code = EXIT_USAGE


# errno values of a full disk or quota: space may be freed before the next try.
_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
# sqlite3.OperationalError messages of a busy or full database (the others, such as
# "no such table", are deterministic).
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database or disk is full")
# DB-API drivers whose OperationalError means the connection or the server failed.
_DRIVER_MODULES = ("psycopg2", "psycopg", "oracledb", "cx_oracle", "pymysql")


def is_retryable(exc: BaseException) -> bool | None:
    """True: a transient fault, worth retrying; False: terminal; None: unknown (the caller
    keeps its default, e.g. Airflow's retries).

    An exception this function does not know is judged by its explicit cause
    (``raise ... from exc``), so a wrapper keeps the verdict of what it wraps.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        verdict = _verdict(exc)
        if verdict is not None:
            return verdict
        exc = exc.__cause__  # type: ignore[assignment]
    return None


def _verdict(exc: BaseException) -> bool | None:
    if isinstance(exc, CpfError):
        return bool(exc.retryable)
    if isinstance(exc, ConnectionError | TimeoutError):  # refused, reset, timed out
        return True
    if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
        return True
    if _is_sqlite_operational(exc):
        return _sqlite_transient(exc) or None
    sqlalchemy = _sqlalchemy_verdict(exc)
    if sqlalchemy is not None:
        return sqlalchemy
    if _is_driver_operational(exc):
        return True
    return None


def _is_sqlite_operational(exc: BaseException) -> bool:
    import sqlite3

    return isinstance(exc, sqlite3.OperationalError)


def _sqlite_transient(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(m in message for m in _SQLITE_TRANSIENT)


def _sqlalchemy_verdict(exc: BaseException) -> bool | None:
    """sqlalchemy's OperationalError (connection, lock) and pool TimeoutError: transient,
    unless the driver underneath is SQLite with a deterministic message."""
    if not type(exc).__module__.startswith("sqlalchemy"):
        return None  # sqlalchemy is imported only when it raised
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.TimeoutError | sa.DisconnectionError):
        return True
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.OperationalError):
        orig = exc.orig
        if orig is not None and _is_sqlite_operational(orig):
            return _sqlite_transient(orig) or None
        return True
    return None


def _is_driver_operational(exc: BaseException) -> bool:
    """A DB-API OperationalError of a server driver (psycopg2, oracledb...), matched by
    name so that no driver is imported here."""
    return any(
        cls.__name__ == "OperationalError"
        and cls.__module__.split(".")[0].lower() in _DRIVER_MODULES
        for cls in type(exc).__mro__
    )


# --------------------------------------------------------------------------------------
# The edge: what the command line (or any caller that must not show a traceback) says
# --------------------------------------------------------------------------------------

KIND_USAGE = "configuration or usage error"
KIND_DATA = "problem in the data"
KIND_TRANSIENT = "environment error (database, disk or network), try again"
KIND_ENVIRONMENT = "environment error (files, folders, database or installed packages)"
KIND_INPUT = "unreadable input file"

# Libraries whose own exceptions mean "this input or this environment is unusable"
# (a corrupt Parquet file, a CSV pandas cannot parse, a database that refuses the file
# it was given), matched by module so that none of them is imported here.
_INPUT_MODULES = ("pyarrow", "pandas")
_DATABASE_MODULES = ("sqlalchemy", "sqlite3", *_DRIVER_MODULES)


class Failure:
    """One expected failure, as the edge reports it: exit code, kind, one line."""

    __slots__ = ("code", "kind", "message")

    def __init__(self, code: int, kind: str, message: str):
        self.code, self.kind, self.message = code, kind, message

    def __repr__(self) -> str:
        return f"Failure({self.code}, {self.kind!r}, {self.message!r})"


def describe_failure(exc: BaseException, subject: object = None) -> Failure | None:
    """The one line an operator reads for ``exc``, or None for a bug (show its traceback).

    ``subject`` names the object an error that carries no file name is about (the
    command's input file). Messages are the first line of what the library said: a
    driver's later lines may quote SQL parameters, never shown; a decoding error
    shows a byte position, never the bytes.
    """
    if isinstance(exc, CpfError):
        if exc.retryable:
            kind = KIND_TRANSIENT
        else:
            kind = KIND_DATA if exc.exit_code == EXIT_DATA else KIND_USAGE
        return Failure(exc.exit_code, kind, _joined(exc))
    if is_retryable(exc):  # database unreachable, disk full
        return Failure(EXIT_USAGE, KIND_TRANSIENT, _first_line(exc))
    prefix = f"{subject}: " if subject is not None else ""
    if isinstance(exc, UnicodeDecodeError):
        return Failure(
            EXIT_USAGE,
            KIND_INPUT,
            f"{prefix}not {exc.encoding.upper()} text (byte {exc.start + 1}: {exc.reason}); "
            "save it as UTF-8",
        )
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else subject
        text = exc.strerror or _first_line(exc)
        if exc.filename2 is not None:
            where = f"{where} -> {exc.filename2}"
        return Failure(EXIT_USAGE, KIND_ENVIRONMENT, f"{where}: {text}" if where else text)
    if isinstance(exc, ImportError) and not (exc.name or "").startswith("cpf_deposit"):
        # an optional driver (s3fs, gcsfs, oracledb...); the package's own: a bug
        return Failure(EXIT_USAGE, KIND_ENVIRONMENT, f"missing package: {_first_line(exc)}")
    if _from_modules(exc, _INPUT_MODULES):
        return Failure(EXIT_USAGE, KIND_INPUT, prefix + _first_line(exc))
    if _from_modules(exc, _DATABASE_MODULES):
        return Failure(EXIT_USAGE, KIND_ENVIRONMENT, f"database: {_first_line(exc)}")
    return None


def _from_modules(exc: BaseException, modules: tuple[str, ...]) -> bool:
    return any(
        cls.__module__.split(".")[0].lower() in modules
        for cls in type(exc).__mro__
        if cls not in (BaseException, Exception, ValueError, RuntimeError, OSError)
    )


def _first_line(exc: BaseException) -> str:
    """A library's error: its first line only (later lines may quote SQL parameters)."""
    return (
        next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:300]
        or type(exc).__name__
    )


def _joined(exc: BaseException) -> str:
    """The package's own message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " / ".join(lines) or type(exc).__name__

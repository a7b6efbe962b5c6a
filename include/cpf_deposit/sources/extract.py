"""Run a source query through an Airflow connection and stream passages to Parquet.

Why this shape: one code path for Oracle (production), SQLite (demo, tests) and
PostgreSQL: the connection is resolved the Airflow way
(``BaseHook.get_connection(conn_id).get_hook()``, so ``AIRFLOW_CONN_<ID>`` works),
rows are fetched with ``fetchmany`` and a large ``arraysize`` (a server-side cursor
on PostgreSQL) and written in row groups by a ``ParquetWriter``: memory stays bounded
whatever the row count. Airflow is imported inside the functions only.

Each batch is converted to Arrow once and mapped column by column
(:meth:`RowMapper.map_batch`); the same arrays feed the canonical file and the
passages. On SQLite a helper process runs the query and hands over Arrow batches
(:func:`sqlite_json_batches`), so the query and the mapping use both cores.

Output: a passages file (columns of :class:`cpf_deposit.model.Passage`, readable by
:func:`cpf_deposit.passage_io.read_passages`), and an issues CSV next to it listing,
per record key or diploma version, what was not exported or left unknown.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import json
import logging
import os
import struct
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpf_deposit.errors import ConfigError, TransientError
from cpf_deposit.passage_io import arrow_schema
from cpf_deposit.progress import Progress, count_fr, seconds_fr
from cpf_deposit.sources.birthplace import BirthplaceResolver, CommuneIndex
from cpf_deposit.sources.canonical import (
    CANONICAL_COLUMNS,
    COLUMN_NAMES,
    NIR_SOURCE_COLUMNS,
    CanonicalParquetWriter,
    dictionary_columns,
)
from cpf_deposit.sources.certmap import DEFAULT_TABLE, CertificationMap
from cpf_deposit.sources.mapping import ERROR, Issue, RowMapper
from cpf_deposit.sources.sql import CONN_DIALECT, query_for

log = logging.getLogger(__name__)

ARRAYSIZE = 20_000
FILE_MODE = 0o600
ISSUE_COLUMNS = ("severity", "source_record_key", "technical_id", "field", "code", "message")


class SourceError(ConfigError, RuntimeError):
    """The source cannot be read: unknown connection, missing table or column (terminal:
    the connection or the config must be fixed)."""


class SourceUnavailable(TransientError, SourceError):
    """The source failed while it was being reached or read (retryable)."""


@dataclass
class ExtractReport:
    system: str
    out: Path
    issues_path: Path
    canonical_path: Path
    rows: int = 0
    passages: int = 0
    errors: int = 0
    warnings: int = 0
    by_code: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line, in French, counts only."""
        return (
            f"extraction {self.system} : {count_fr(self.rows)} ligne(s) lue(s), "
            f"{count_fr(self.passages)} passage(s) écrit(s), {count_fr(self.errors)} erreur(s), "
            f"{count_fr(self.warnings)} avertissement(s) en {seconds_fr(self.seconds)}"
        )


def connect(conn_id: str):
    """DBAPI connection and Airflow conn_type for ``conn_id`` (OracleHook, SqliteHook...)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - Airflow 2 layout
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise SourceError(f"connection {conn_id!r} not found: {exc}") from None
    except Exception as exc:  # a secrets backend or the API server failing: try again later
        raise SourceUnavailable(f"connection {conn_id!r} could not be read: {exc}") from exc
    conn_type = connection.conn_type
    if conn_type not in CONN_DIALECT:
        raise SourceError(f"connection {conn_id!r}: type {conn_type!r} is not supported")
    return connection.get_hook().get_conn(), conn_type


def bind_window(conn_type: str, date_from: dt.date, date_to: dt.date) -> dict[str, Any]:
    """Binds of the run window ``[date_from, date_to)``: the end is exclusive, here as in
    the SQL and everywhere else (an award of ``date_to`` belongs to the next window).

    SQLite stores dates as ISO text, so it gets ISO dates (text comparison is right);
    Oracle and PostgreSQL get real dates.
    """
    if conn_type == "sqlite":
        return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    return {"date_from": date_from, "date_to": date_to}


def _cursor(conn, conn_type: str, arraysize: int):
    if conn_type in ("postgres", "postgresql"):
        cur = conn.cursor(name="cpf_deposit_extract")  # server-side: streamed
        cur.itersize = arraysize
    else:
        cur = conn.cursor()
    cur.arraysize = arraysize
    if conn_type == "oracle":
        cur.prefetchrows = arraysize
    return cur


def stream_rows(
    conn, conn_type: str, sql: str, params: Mapping[str, Any], arraysize: int = ARRAYSIZE
) -> Iterator[tuple[list[str], list[tuple]]]:
    """Batches of (column names in lower case, rows) from ``sql``."""
    cur = _cursor(conn, conn_type, arraysize)
    try:
        cur.execute(sql, dict(params))
        columns = [d[0].lower() for d in cur.description]
        while True:
            rows = cur.fetchmany(arraysize)
            if not rows:
                break
            yield columns, rows
            rows = None  # let the batch go before the next one is fetched
    finally:
        cur.close()


class Batches:
    """The batches of a query; :meth:`close` releases its cursor or its reader process."""

    def __init__(self, iterator: Iterator, closer=None):
        self._iterator = iterator
        self._closer = closer

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[list[str], list[Any]]:
        return next(self._iterator)

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        if self._closer is not None:
            self._closer()


def stream_columns(
    conn, conn_type: str, sql: str, params: Mapping[str, Any], arraysize: int = ARRAYSIZE
) -> Batches:
    """Batches of (column names in lower case, the batch column by column) from ``sql``.

    On SQLite each row crosses as one JSON text and a batch is parsed into Arrow arrays
    by pyarrow (:func:`sqlite_json_batches`); elsewhere the columns are tuples of the
    values the driver returns. Both carry the same values. On a SQLite file the query
    starts at once, in a helper process; close the batches when done.
    """
    if conn_type == "sqlite" and _has_json(conn):
        return sqlite_json_batches(conn, sql, params, arraysize)

    def transposed():
        for columns, rows in stream_rows(conn, conn_type, sql, params, arraysize):
            batch = list(zip(*rows, strict=True))
            del rows
            yield columns, batch

    return Batches(transposed())


def _has_json(conn) -> bool:
    try:
        with closing(conn.execute("SELECT json_object('a', 1)")) as cur:
            cur.fetchall()
    except Exception:
        return False
    return True


# Short JSON keys: less text for SQLite to write and for pyarrow to parse.
_KEYS = tuple("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def sqlite_json_batches(
    conn, sql: str, params: Mapping[str, Any], arraysize: int = ARRAYSIZE
) -> Batches:
    """Batches of ``sql`` on SQLite as Arrow arrays, without a Python object per value.

    Why: building 35 Python objects per row, then converting them to Arrow, costs more
    than the query itself. The query is wrapped so SQLite returns each row as one JSON
    object (``json_object``: exact for text, including NUL characters, integers and
    NULL; CSV through ``format('%Q')`` would parse faster but truncates at a NUL and
    quotes numbers), and pyarrow parses a batch of them in C++ against the canonical
    types. A value of another type than its canonical column (a number in a text
    column) fails the run, as it did when the Python values were converted to Arrow.

    A database file is read by a helper process (:data:`_READER`, read-only, the same
    query), so SQLite runs on one core while this process maps and writes on the
    other; an in-memory database is read here.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    with closing(conn.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0", dict(params))) as cur:
        names = [d[0] for d in cur.description]  # also: a wrong query fails here, as before
    columns = [n.lower() for n in names]
    keys = [_KEYS[i] if i < len(_KEYS) else f"c{i}" for i in range(len(names))]
    pairs = ", ".join(
        f"'{k}', q.\"{n.replace(chr(34), chr(34) * 2)}\"" for k, n in zip(keys, names, strict=True)
    )
    wrapped = f"SELECT json_object({pairs}) FROM ({sql}) AS q"
    types = {"text": pa.string(), "int": pa.int64(), "date": pa.string()}
    canonical = {c.name: types[c.type] for c in CANONICAL_COLUMNS}
    canonical.update(dict.fromkeys(NIR_SOURCE_COLUMNS, pa.string()))  # text, never inferred
    schema = pa.schema(
        [(k, canonical[c]) for k, c in zip(keys, columns, strict=True) if c in canonical]
    )
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    path = _database_file(conn)
    reader = None
    if path is not None and _json_safe(params):
        fields = [(f.name, str(f.type)) for f in schema]
        reader = _Reader(path, wrapped, params, arraysize, fields)
        frames: Iterator[tuple[bytes, int]] = iter(reader)
    else:
        frames = _json_frames(conn.cursor(), wrapped, params, arraysize)

    def parsed():
        for data, longest in frames:
            if reader is not None:  # already parsed by the reader: an Arrow IPC stream
                table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
            else:
                read = pj.ReadOptions(block_size=max(1 << 22, 4 * longest + 2))
                table = pj.read_json(pa.BufferReader(data), read_options=read, parse_options=parse)
            del data
            batch = [_combined(table.column(k), len(table)) for k in keys]
            del table
            yield columns, batch

    return Batches(parsed(), None if reader is None else reader.close)


def _json_frames(cur, sql: str, params: Mapping[str, Any], arraysize: int):
    """(newline-separated JSON rows as UTF-8, longest row in characters) per batch."""
    cur.arraysize = arraysize
    try:
        cur.execute(sql, dict(params))
        while True:
            rows = cur.fetchmany(arraysize)
            if not rows:
                break
            lines = [r[0] for r in rows]
            del rows
            longest = max(map(len, lines))
            yield "\n".join(lines).encode(), longest
            del lines
    finally:
        cur.close()


# The helper process: the same loop as _json_frames, each batch then parsed by pyarrow
# as in sqlite_json_batches (the query and the parsing share its core, the mapping has
# the other) and written to stdout as an Arrow IPC stream after a (size, 0) header; a
# zero size ends the output. It holds no personal data beyond the batch in flight and
# logs nothing; an error is written as "ExceptionClass: message" on stderr.
_READER = """
import json, sqlite3, struct, sys
request = json.loads(sys.stdin.buffer.read())
out = sys.stdout.buffer
try:
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([(k, pa.type_for_alias(t)) for k, t in request["fields"]])
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    conn = sqlite3.connect(request["uri"], uri=True)
    cur = conn.cursor()
    size = request["arraysize"]
    cur.arraysize = size
    cur.execute(request["sql"], request["params"])
    while True:
        rows = cur.fetchmany(size)
        if not rows:
            break
        lines = [r[0] for r in rows]
        del rows
        block = max(1 << 22, 4 * max(map(len, lines)) + 2)
        data = "\\n".join(lines).encode()
        del lines
        table = pj.read_json(
            pa.BufferReader(data), read_options=pj.ReadOptions(block_size=block),
            parse_options=parse,
        )
        del data
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        del table
        frame = sink.getvalue()
        out.write(struct.pack("<QQ", frame.size, 0))
        out.write(frame)
        del frame, sink
    out.write(struct.pack("<QQ", 0, 0))
    out.flush()
except Exception as exc:
    sys.stderr.write(f"{type(exc).__name__}: {exc}")
    sys.exit(1)
"""
_FRAME = struct.Struct("<QQ")


def _database_file(conn) -> str | None:
    """The file of the main database of a sqlite3 connection; None when in memory."""
    try:
        with closing(conn.execute("PRAGMA database_list")) as cur:
            for _, name, file in cur.fetchall():
                if name == "main" and file and Path(file).is_file():
                    return file
    except Exception:
        _rollback(conn)
    return None


def _json_safe(params: Mapping[str, Any]) -> bool:
    return all(v is None or isinstance(v, str | int | float) for v in params.values())


class _Reader:
    """:data:`_READER` on a database file, started at once; a thread drains its pipe."""

    def __init__(
        self,
        path: str,
        sql: str,
        params: Mapping[str, Any],
        arraysize: int,
        fields: list[tuple[str, str]],
    ):
        import queue
        import subprocess
        import sys
        import threading
        from urllib.parse import quote

        request = {
            "uri": f"file:{quote(path)}?mode=ro",
            "sql": sql,
            "params": dict(params),
            "arraysize": arraysize,
            "fields": fields,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _READER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.proc.stdin.write(json.dumps(request).encode())  # type: ignore[union-attr]
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.frames: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.finished = self.closed = False
        self.thread = threading.Thread(target=self._pump, name="cpf-sqlite-reader", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        stream = self.proc.stdout
        try:
            while not self.stop.is_set():
                head = stream.read(_FRAME.size)  # type: ignore[union-attr]
                if len(head) < _FRAME.size:
                    self.frames.put(EOFError())
                    return
                size, longest = _FRAME.unpack(head)
                if size == 0:
                    self.frames.put(None)
                    return
                self.frames.put((stream.read(size), longest))  # type: ignore[union-attr]
        except BaseException as exc:  # handed to the consumer
            self.frames.put(exc)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        import sqlite3

        import pyarrow as pa

        try:
            while True:
                item = self.frames.get()
                if item is None:
                    self.finished = True
                    return
                if isinstance(item, EOFError):
                    self.proc.wait()
                    error = self.proc.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
                    name, _, message = error.partition(": ")
                    kind = getattr(sqlite3, name, None) or getattr(pa, name, None)
                    if isinstance(kind, type) and issubclass(kind, Exception):
                        raise kind(message)
                    raise SourceUnavailable(
                        f"the SQLite reader stopped: {error or self.proc.returncode}"
                    )
                if isinstance(item, BaseException):
                    raise item
                yield item
                del item
        finally:
            self.close()

    def close(self) -> None:
        import queue

        if self.closed:
            return
        self.closed = True
        self.stop.set()
        if not self.finished and self.proc.poll() is None:
            self.proc.kill()
        while self.thread.is_alive():  # unblock a pump waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self.frames.get(timeout=0.05)
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()  # type: ignore[union-attr]


def _combined(column, n: int):
    """One Arrow array for a parsed column (an all-null column may be typeless)."""
    import pyarrow as pa

    if column.num_chunks == 1:
        return column.chunk(0)
    if column.num_chunks == 0:
        return pa.nulls(n, column.type)
    return column.combine_chunks()


def load_certification_map(
    conn, path: str | Path | None, table: str | None
) -> CertificationMap | None:
    """The CSV when given, else the table (default ``cdc_vdi_certif_map``) if it exists."""
    if path is not None:
        return CertificationMap.from_csv(path)
    with closing(conn.cursor()) as cur:
        try:
            return CertificationMap.from_cursor(cur, table or DEFAULT_TABLE)
        except Exception:
            if table is not None:
                raise
    _rollback(conn)
    return None


def load_commune_index(conn, system: str) -> CommuneIndex:
    """The source's own COMMUNE table (Apogée) when readable, else the offline reference."""
    if system == "apogee":
        try:
            with closing(conn.cursor()) as cur:
                cur.execute("SELECT cod_com, lib_com FROM commune")
                rows = cur.fetchall()
            if rows:
                return CommuneIndex(rows)
        except Exception:
            _rollback(conn)
    return CommuneIndex.offline()


def _rollback(conn) -> None:
    with contextlib.suppress(Exception):  # sqlite3 without a transaction, or autocommit
        conn.rollback()


def _open_private(path: Path, mode: str, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, mode, **kwargs)


class PassageParquetWriter:
    """Writes passages in row groups: Arrow tables of a batch, or value tuples.

    Same schema as :func:`cpf_deposit.passage_io.write_passages`. Tuples follow the
    order of ``model.FIELDS`` (:meth:`RowMapper.map_values`); tables come from
    :meth:`RowMapper.map_batch`.
    """

    def __init__(self, fh, chunk_rows: int = 50_000):
        import pyarrow.parquet as pq

        self.schema = arrow_schema()
        self.writer = pq.ParquetWriter(
            fh, self.schema, use_dictionary=dictionary_columns(self.schema)
        )
        self.chunk_rows = chunk_rows
        self.buffer: list[tuple] = []
        self.pending: list = []
        self.pending_rows = 0
        self.count = 0

    def add(self, values: tuple) -> None:
        self.buffer.append(values)
        if len(self.buffer) >= self.chunk_rows:
            self._tuples_to_table()
            self.flush()

    def write_table(self, table) -> None:
        if self.buffer:
            self._tuples_to_table()
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.chunk_rows:
            self.flush()

    def _tuples_to_table(self) -> None:
        import pyarrow as pa

        columns = list(zip(*self.buffer, strict=True))
        arrays = [pa.array(col, type=self.schema.field(i).type) for i, col in enumerate(columns)]
        self.buffer = []
        self.pending.append(pa.Table.from_arrays(arrays, schema=self.schema))
        self.pending_rows += len(columns[0])

    def flush(self) -> None:
        import pyarrow as pa

        if self.buffer:
            self._tuples_to_table()
        table = pa.concat_tables(self.pending) if self.pending else self.schema.empty_table()
        self.writer.write_table(table)
        self.count += self.pending_rows
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        if self.buffer or self.pending or self.count == 0:
            self.flush()
        self.writer.close()


def extract(
    system: str,
    conn_id: str,
    date_from: dt.date,
    date_to: dt.date,
    out: str | Path,
    *,
    id_key: bytes,
    certification_map: str | Path | None = None,
    map_table: str | None = None,
    options: Mapping[str, Any] | None = None,
    arraysize: int = ARRAYSIZE,
    issues_out: str | Path | None = None,
    canonical_out: str | Path | None = None,
) -> ExtractReport:
    """Extract the awards of ``[date_from, date_to)`` (end exclusive) from ``system`` into
    ``out`` (Parquet).

    One pass over the source writes three files: the passages (``out``), the raw
    canonical rows the identity gate reads (``canonical_out``, default
    ``<out>.canonical.parquet``) and the issues CSV. ``options`` are the source options
    of the config (``mention_map``, ``access_mode_map``, ``certification_map_table``);
    ``id_key`` is the ledger's, for the idTechnique of each passage.
    """
    options = options or {}
    if date_from >= date_to:
        raise ValueError("empty window: the start must be before the (exclusive) end")
    out = Path(out)
    issues_path = Path(issues_out) if issues_out else out.with_suffix(".issues.csv")
    canonical_path = (
        Path(canonical_out) if canonical_out else out.with_name(f"{out.stem}.canonical.parquet")
    )
    report = ExtractReport(system, out, issues_path, canonical_path)
    started = time.perf_counter()
    conn, conn_type = connect(conn_id)
    with closing(conn):
        sql = query_for(system, conn_type)
        params = bind_window(conn_type, date_from, date_to)
        batches = stream_columns(conn, conn_type, sql, params, arraysize)  # may start now
        with closing(batches):
            cmap = load_certification_map(
                conn, certification_map, map_table or options.get("certification_map_table")
            )
            resolver = BirthplaceResolver(load_commune_index(conn, system))
            with (
                Progress(log, f"extraction {system}", unit="lignes") as progress,
                _open_private(out, "wb") as fh,
                _open_private(canonical_path, "wb") as ch,
                _open_private(issues_path, "w", newline="", encoding="utf-8") as ih,
            ):
                issues_csv = csv.writer(ih)
                issues_csv.writerow(ISSUE_COLUMNS)
                writer = PassageParquetWriter(fh)
                raw: CanonicalParquetWriter | None = None
                mapper: RowMapper | None = None

                def record(found: list[Issue]) -> None:
                    for i in found:
                        issues_csv.writerow([getattr(i, c) or "" for c in ISSUE_COLUMNS])
                        report.by_code[i.code] += 1
                        if i.severity == ERROR:
                            report.errors += 1
                        else:
                            report.warnings += 1

                collecting = gc.isenabled()
                gc.disable()  # millions of short-lived tuples, no cycles: collections cost seconds
                try:
                    for columns, batch in batches:
                        if raw is None:
                            raw = CanonicalParquetWriter(ch, columns)
                            mapper = RowMapper(
                                columns,
                                cmap,
                                mention_map=options.get("mention_map"),
                                access_map=options.get("access_mode_map"),
                                birthplaces=resolver,
                                id_key=id_key,
                            )
                        arrays = raw.arrays(batch)
                        raw.write_arrays(arrays)
                        passages, found = mapper.map_batch(batch, arrays)  # type: ignore[union-attr]
                        record(found)
                        writer.write_table(passages)
                        report.rows += len(batch[0])
                        progress.advance(len(batch[0]))
                        del batch, arrays, passages, found
                    if mapper is not None:
                        record(mapper.unmapped_issues())
                finally:
                    batches.close()
                    if collecting:
                        gc.enable()
                    writer.close()
                    if raw is None:
                        raw = CanonicalParquetWriter(ch, list(COLUMN_NAMES))
                    raw.close()
                report.passages = writer.count
    report.seconds = time.perf_counter() - started
    return report  # logged by the progress line; the caller logs report.summary()

"""Run a source query through an Airflow connection and stream passages to Parquet.

Why this shape: one code path for Oracle (production), SQLite (demo, tests) and
PostgreSQL: the connection is resolved the Airflow way
(``BaseHook.get_connection(conn_id).get_hook()``, so ``AIRFLOW_CONN_<ID>`` works),
rows are fetched with ``fetchmany`` and a large ``arraysize`` (a server-side cursor
on PostgreSQL) and written in row groups by a ``ParquetWriter``: memory stays bounded
whatever the row count. Airflow is imported inside the functions only.

Output: a passages file (columns of :class:`cpf_deposit.model.Passage`, readable by
:func:`cpf_deposit.passage_io.read_passages`), and an issues CSV next to it listing,
per record key or diploma version, what was not exported or left unknown.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpf_deposit.model import FIELDS
from cpf_deposit.passage_io import arrow_schema
from cpf_deposit.sources.birthplace import BirthplaceResolver, CommuneIndex
from cpf_deposit.sources.canonical import COLUMN_NAMES, CanonicalParquetWriter
from cpf_deposit.sources.certmap import DEFAULT_TABLE, CertificationMap
from cpf_deposit.sources.mapping import ERROR, Issue, RowMapper
from cpf_deposit.sources.sql import CONN_DIALECT, query_for

log = logging.getLogger(__name__)

ARRAYSIZE = 20_000
FILE_MODE = 0o600
ISSUE_COLUMNS = ("severity", "source_record_key", "technical_id", "field", "code", "message")


class SourceError(RuntimeError):
    """The source cannot be read: unknown connection, missing table or column."""


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
            f"extraction {self.system} : {self.rows} ligne(s) lue(s), {self.passages} passage(s) "
            f"écrit(s), {self.errors} erreur(s), {self.warnings} avertissement(s) "
            f"en {self.seconds:.1f} s"
        )


def connect(conn_id: str):
    """DBAPI connection and Airflow conn_type for ``conn_id`` (OracleHook, SqliteHook...)."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # pragma: no cover - Airflow 2 layout
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and friends
        raise SourceError(f"connection {conn_id!r} not found: {exc}") from None
    conn_type = connection.conn_type
    if conn_type not in CONN_DIALECT:
        raise SourceError(f"connection {conn_id!r}: type {conn_type!r} is not supported")
    return connection.get_hook().get_conn(), conn_type


def bind_window(conn_type: str, date_from: dt.date, date_to: dt.date) -> dict[str, Any]:
    """Binds of the run window: ``date_to`` is inclusive here, exclusive in the SQL.

    SQLite stores dates as ISO text, so it gets ISO dates (text comparison is right);
    Oracle and PostgreSQL get real dates.
    """
    end = date_to + dt.timedelta(days=1)
    if conn_type == "sqlite":
        return {"date_from": date_from.isoformat(), "date_to": end.isoformat()}
    return {"date_from": date_from, "date_to": end}


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
        while rows := cur.fetchmany(arraysize):
            yield columns, rows
    finally:
        cur.close()


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
    """Writes passage value tuples (``model.FIELDS`` order) in row groups, column by column.

    Same schema as :func:`cpf_deposit.passage_io.write_passages`.
    """

    def __init__(self, fh, chunk_rows: int = 50_000):
        import pyarrow.parquet as pq

        self.schema = arrow_schema()
        self.writer = pq.ParquetWriter(fh, self.schema)
        self.chunk_rows = chunk_rows
        self.buffer: list[tuple] = []
        self.count = 0

    def add(self, values: tuple) -> None:
        self.buffer.append(values)
        if len(self.buffer) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        n = len(self.buffer)
        columns = list(zip(*self.buffer, strict=True)) if n else [()] * len(FIELDS)
        arrays = [pa.array(col, type=self.schema.field(i).type) for i, col in enumerate(columns)]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.count += n
        self.buffer = []

    def close(self) -> None:
        if self.buffer or self.count == 0:
            self.flush()
        self.writer.close()


def extract(
    system: str,
    conn_id: str,
    date_from: dt.date,
    date_to: dt.date,
    out: str | Path,
    *,
    certification_map: str | Path | None = None,
    map_table: str | None = None,
    options: Mapping[str, Any] | None = None,
    arraysize: int = ARRAYSIZE,
    issues_out: str | Path | None = None,
    canonical_out: str | Path | None = None,
) -> ExtractReport:
    """Extract the awards of ``[date_from, date_to]`` from ``system`` into ``out`` (Parquet).

    One pass over the source writes three files: the passages (``out``), the raw
    canonical rows the identity gate reads (``canonical_out``, default
    ``<out>.canonical.parquet``) and the issues CSV. ``options`` are the source options
    of the config (``mention_map``, ``access_mode_map``, ``certification_map_table``).
    """
    options = options or {}
    if date_from > date_to:
        raise ValueError("the window starts after it ends")
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
        cmap = load_certification_map(
            conn, certification_map, map_table or options.get("certification_map_table")
        )
        resolver = BirthplaceResolver(load_commune_index(conn, system))
        params = bind_window(conn_type, date_from, date_to)
        with (
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

            try:
                for columns, rows in stream_rows(conn, conn_type, sql, params, arraysize):
                    if raw is None:
                        raw = CanonicalParquetWriter(ch, columns)
                    raw.add_rows(rows)
                    if mapper is None:
                        mapper = RowMapper(
                            columns,
                            cmap,
                            mention_map=options.get("mention_map"),
                            access_map=options.get("access_mode_map"),
                            birthplaces=resolver,
                        )
                    map_values, add = mapper.map_values, writer.add
                    for row in rows:
                        values, found = map_values(row)
                        if found:
                            record(found)
                        if values is not None:
                            add(values)
                    report.rows += len(rows)
                if mapper is not None:
                    record(mapper.unmapped_issues())
            finally:
                writer.close()
                if raw is None:
                    raw = CanonicalParquetWriter(ch, list(COLUMN_NAMES))
                raw.close()
            report.passages = writer.count
    report.seconds = time.perf_counter() - started
    log.info(
        "extract %s: %d rows, %d passages, %d errors, %d warnings",
        system,
        report.rows,
        report.passages,
        report.errors,
        report.warnings,
    )
    return report

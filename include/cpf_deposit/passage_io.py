"""Canonical passages to and from CSV and Parquet files, streamed in batches.

Columns are the attribute names of :class:`cpf_deposit.model.Passage`. An empty cell is
an unknown value; nothing else is changed (no trimming, no case change). DigComp
results travel as a JSON list of ``[niveau, domaine, competence]``. A row that cannot
become a passage (a date that does not exist, text in a number column) is reported
as a :class:`~cpf_deposit.flux.writer.Refusal` naming the row and the field, never
dropped silently.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cpf_deposit.errors import DataError
from cpf_deposit.flux.writer import Refusal
from cpf_deposit.model import FIELD_BY_NAME, FIELDS, Passage, Problem

BATCH_ROWS = 50_000


class RowError(DataError, ValueError):
    """A cell cannot be read as its field's type (terminal: the row is refused)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _convert(name: str, value: Any) -> Any:
    """A cell (str from CSV, typed from Parquet) to the model's Python type."""
    if value is None or (isinstance(value, str) and value == ""):
        return () if name == "digcomp_results" else None
    f = FIELD_BY_NAME[name]
    try:
        if f.type == "date":
            if isinstance(value, dt.datetime):
                raise RowError(name, "expected a date without time")
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
        if f.type == "int":
            if isinstance(value, bool):
                raise RowError(name, "expected a whole number")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
                return int(value)
            raise RowError(name, "expected a whole number")
        if f.type == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "1"):
                return True
            if value in ("false", "0"):
                return False
            raise RowError(name, "expected true or false")
        if f.type == "digcomp":
            items = json.loads(value) if isinstance(value, str) else value
            return tuple(tuple(item) for item in items)
        return value if isinstance(value, str) else str(value)
    except RowError:
        raise
    except (ValueError, TypeError) as exc:
        raise RowError(name, f"cannot be read as {f.type}: {type(exc).__name__}") from None


def _fast(name: str, ftype: str):
    """A converter for one field: a value already of the model's type (as Parquet gives
    it) passes at once; anything else goes through :func:`_convert`. Why: this runs
    once per field and row, 6 million times for a chunk of 143,000 passages."""
    exact = {"text": str, "date": dt.date, "int": int, "bool": bool}.get(ftype)
    if exact is None:
        return lambda v: _convert(name, v)
    if exact is str:
        return lambda v: v if type(v) is str and v else None if v is None else _convert(name, v)
    return lambda v: v if type(v) is exact else None if v is None else _convert(name, v)


_CONVERTERS = {f.name: _fast(f.name, f.type) for f in FIELDS}


def passage_from_record(record: dict[str, Any]) -> Passage:
    """Build a passage from a row; unknown columns are ignored, missing ones are unknown."""
    kwargs = {n: _CONVERTERS[n](v) for n, v in record.items() if n in _CONVERTERS}
    for required in ("certification_type", "certification_code", "technical_id", "award_date"):
        kwargs.setdefault(required, None)
    if kwargs.get("is_final") is None:
        kwargs.pop("is_final", None)
    if kwargs.get("obtention") is None:
        kwargs.pop("obtention", None)
    return Passage(**kwargs)


def record_from_passage(p: Passage) -> dict[str, Any]:
    rec = p.to_record()
    rec["digcomp_results"] = json.dumps(p.digcomp_results) if p.digcomp_results else None
    return rec


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
    else:
        raise ValueError(f"{path.name}: expected a .csv or .parquet file")


def read_passages(path: str | Path) -> Iterator[Passage | Refusal]:
    """Stream passages from a file; unreadable rows come out as refusals (row number kept)."""
    for number, row in enumerate(_rows(Path(path)), start=1):
        try:
            yield passage_from_record(row)
        except RowError as exc:
            f = FIELD_BY_NAME[exc.field]
            yield Refusal(
                row.get("technical_id") or None,
                row.get("source_record_key") or f"row {number}",
                (Problem(f.name, f.element, "bad_type", str(exc)),),
            )


def _open_private(path: Path, mode: str = "w", **kwargs):
    """Write atomically with mode 0600 (:func:`cpf_deposit.files.private_file`): these
    files hold personal data, so they are complete or absent."""
    from cpf_deposit.files import private_file

    return private_file(path, mode, **kwargs)


def write_passages(passages: Iterable[Passage], path: str | Path) -> int:
    """Write passages to ``.csv`` or ``.parquet`` (mode 0600), in batches. Returns the count."""
    path = Path(path)
    columns = [f.name for f in FIELDS]
    count = 0
    if path.suffix.lower() == ".csv":
        with _open_private(path, newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            for p in passages:
                rec = record_from_passage(p)
                w.writerow({k: "" if v is None else _csv_cell(v) for k, v in rec.items()})
                count += 1
        return count
    if path.suffix.lower() != ".parquet":
        raise ValueError(f"{path.name}: expected a .csv or .parquet file")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    with _open_private(path, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
        buffer: list[dict[str, Any]] = []
        for p in passages:
            buffer.append(record_from_passage(p))
            count += 1
            if len(buffer) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                buffer.clear()
        if buffer or count == 0:
            writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
    return count


def _csv_cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v) if not isinstance(v, dt.date) else v.isoformat()


def arrow_schema():
    """Parquet schema of canonical passages (shared with extraction)."""
    import pyarrow as pa

    types = {"date": pa.date32(), "int": pa.int32(), "bool": pa.bool_()}
    return pa.schema([(f.name, types.get(f.type, pa.string())) for f in FIELDS])

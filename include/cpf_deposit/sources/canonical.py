"""The canonical source columns: what every source query returns, documented once.

Each SQL file under ``cpf_deposit/sql`` returns exactly these columns, whatever the
source system, so the mapping to :class:`cpf_deposit.model.Passage` is written and
tested once (docs/sources.md carries the same table for DBAs). Values stay raw but
typed: source codes, not CDC codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # text | int | date
    doc: str


def _c(name: str, type_: str, doc: str) -> Column:
    return Column(name, type_, doc)


CANONICAL_COLUMNS: tuple[Column, ...] = (
    _c("source_system", "text", "APOGEE, GEODE or PEGASE."),
    _c("source_record_key", "text", "Stable key of the award in the source, unique per award."),
    _c("source_person_id", "text", "Internal person id (Apogée COD_IND, Pégase apprenant.id)."),
    _c("student_number", "text", "Student number (COD_ETU, code_apprenant)."),
    _c("ine", "text", "INE national student id; NULL when unknown."),
    _c("birth_name", "text", "Birth name as stored."),
    _c("usage_name", "text", "Usage name; NULL when absent or equal to the birth name."),
    _c("first_name_1", "text", "First civil-status first name (never the usage one)."),
    _c("first_name_2", "text", "Second civil-status first name."),
    _c("first_name_3", "text", "Third civil-status first name."),
    _c("sex", "text", "Civil-status sex, M or F, upper-cased; NULL when unknown."),
    _c("birth_date", "date", "Birth date."),
    _c("birth_date_is_estimated", "text", "Y when the source flags the birth date as estimated."),
    _c("born_in_france", "text", "Y, N, or NULL when the source does not say."),
    _c("birth_department_code", "text", "Source département code of a French birth (057, 02A)."),
    _c("birth_commune_insee", "text", "INSEE commune code when the source holds it."),
    _c("birth_city_label", "text", "Free-text birth city, French or foreign."),
    _c("birth_country_code", "text", "Source 3-character country code (100 = France)."),
    _c("birth_country_label", "text", "Source country label."),
    _c("nationality_code", "text", "Source nationality code."),
    _c("certification_type", "text", "RNCP or RS when the source holds it, else NULL (mapping)."),
    _c("certification_code", "text", "France compétences code when the source holds it."),
    _c("diploma_code", "text", "Diploma code (COD_DIP, diplome.code)."),
    _c("diploma_version", "text", "Diploma version (COD_VRS_VDI); NULL when none."),
    _c("diploma_label", "text", "Diploma label."),
    _c("academic_year", "int", "Start year of the academic year of the award (2023 = 2023-2024)."),
    _c("session_code", "text", "Session of the award (0, 1, 2)."),
    _c("result_code", "text", "Source result code (positive only)."),
    _c("mention_code", "text", "Source honours code."),
    _c("mention_label", "text", "Source honours label."),
    _c("access_mode_code", "text", "Source access-route code (régime d'inscription)."),
    _c("award_date", "date", "Date of obtention; NULL when the source has none (never invented)."),
    _c("results_status", "text", "Publication state of the results (Apogée ETA_AVC_VDI)."),
    _c("results_status_date", "date", "Date of that state (jury publication)."),
    _c("last_modified", "date", "Latest change of the person or the result."),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS)


def arrow_schema():
    """Parquet schema of extracted canonical rows (the identity gate reads them)."""
    import pyarrow as pa

    types = {"text": pa.string(), "int": pa.int64(), "date": pa.date32()}
    return pa.schema([(c.name, types[c.type]) for c in CANONICAL_COLUMNS])


# One value per row: a dictionary page would only be built and dropped.
UNIQUE_PER_ROW = frozenset(
    {"source_record_key", "source_person_id", "student_number", "ine", "technical_id"}
)


def dictionary_columns(schema) -> list[str]:
    """Columns worth dictionary encoding in Parquet: all but the per-row identifiers."""
    return [name for name in schema.names if name not in UNIQUE_PER_ROW]


def _column(values: Any, type_):
    """One batch column to Arrow: dates may come as date, datetime or ISO text.

    ``values`` is a sequence of Python values, or an Arrow array of the same values
    (the SQLite transport of :mod:`cpf_deposit.sources.extract`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_date32(type_):
        if isinstance(values, pa.Array):
            return values if values.type == type_ else values.cast(type_)
        return pa.array(values, type=type_, from_pandas=False)
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    if pa.types.is_null(arr.type):
        return arr.cast(type_)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.utf8_slice_codeunits(arr, 0, 10)  # 'YYYY-MM-DD[ HH:MM:SS]': the day only
    return arr.cast(type_)


class CanonicalParquetWriter:
    """Writes raw source rows (canonical column order) in row groups, column by column.

    :meth:`arrays` converts one fetched batch to Arrow once; the extraction writes those
    arrays here (:meth:`write_arrays`) and hands them to the mapper, which takes the
    passage's unchanged text columns from them.
    """

    def __init__(self, fh, columns: list[str], chunk_rows: int = 50_000):
        import pyarrow.parquet as pq

        self.schema = arrow_schema()
        missing = [c for c in COLUMN_NAMES if c not in columns]
        if missing:
            raise ValueError(f"the source query lacks canonical columns: {', '.join(missing)}")
        self.positions = [columns.index(c) for c in COLUMN_NAMES]
        self.writer = pq.ParquetWriter(
            fh, self.schema, use_dictionary=dictionary_columns(self.schema)
        )
        self.chunk_rows = chunk_rows
        self.pending: list = []
        self.pending_rows = 0
        self.count = 0

    def arrays(self, columns: Sequence[Sequence[object]]) -> dict[str, Any]:
        """One batch, given column by column in the source order, as canonical Arrow arrays."""
        return {
            name: _column(columns[pos], self.schema.field(i).type)
            for i, (name, pos) in enumerate(zip(COLUMN_NAMES, self.positions, strict=True))
        }

    def write_arrays(self, arrays: Mapping[str, Any]) -> None:
        import pyarrow as pa

        table = pa.Table.from_arrays([arrays[c] for c in COLUMN_NAMES], schema=self.schema)
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= self.chunk_rows:
            self.flush()

    def add_rows(self, rows: list[tuple]) -> None:
        """Rows as the cursor returns them (tuples in the source column order)."""
        if rows:
            self.write_arrays(self.arrays(list(zip(*rows, strict=True))))

    def flush(self) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self.pending) if self.pending else self.schema.empty_table()
        self.writer.write_table(table)
        self.count += self.pending_rows
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        if self.pending or self.count == 0:
            self.flush()
        self.writer.close()

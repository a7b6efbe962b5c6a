"""The canonical source columns: what every source query returns, documented once.

Each SQL file under ``cpf_deposit/sql`` returns exactly these columns, whatever the
source system, so the mapping to :class:`cpf_deposit.model.Passage` is written and
tested once (docs/sources.md carries the same table for DBAs). Values stay raw but
typed: source codes, not CDC codes.

A query may also return the NIR (:data:`NIR_SOURCE_COLUMNS`, Apogée only): the
extraction consumes it here, batch by batch, into the facts of :data:`NIR_COLUMNS`
(:mod:`cpf_deposit.sources.nir`) and never writes it. The canonical Parquet file holds
the canonical columns and those facts.
"""

from __future__ import annotations

import datetime as dt
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

# The NIR as an optional query returns it (Apogée COD_NNI_ETU, COD_CLE_NNI_ETU): read by
# the extraction only, turned into NIR_COLUMNS and dropped; never written anywhere.
NIR_SOURCE_COLUMNS: tuple[str, str] = ("nir_number", "nir_key")

# What the extraction derives from the NIR (cpf_deposit.sources.nir), written beside
# the canonical columns for the identity gate; none of them is the NIR.
NIR_COLUMNS: tuple[Column, ...] = (
    _c("nir_status", "text", "absent, malformed, invalid_key, temporary or valid."),
    _c("nir_sex", "text", "Sex the NIR gives, M or F (valid NIR only)."),
    _c("nir_birth_year", "int", "Birth year the NIR gives, century resolved (valid NIR only)."),
    _c("nir_birth_month", "text", "Birth month the NIR gives, 01-12; NULL when it has none."),
    _c("nir_birth_department", "text", "Birth département: 44, 2A, 20, 974; 99 = abroad."),
    _c("nir_birth_commune", "text", "INSEE code of the birth commune, or 99xxx country code."),
)
NIR_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in NIR_COLUMNS)
_TYPES = {"text": "string", "int": "int64", "date": "date32"}


def arrow_schema():
    """Arrow schema of the canonical columns (what the source queries return)."""
    import pyarrow as pa

    return pa.schema([(c.name, getattr(pa, _TYPES[c.type])()) for c in CANONICAL_COLUMNS])


def file_schema():
    """Parquet schema of extracted canonical rows: the canonical columns and the NIR
    facts (the identity gate reads them)."""
    import pyarrow as pa

    columns = (*CANONICAL_COLUMNS, *NIR_COLUMNS)
    return pa.schema([(c.name, getattr(pa, _TYPES[c.type])()) for c in columns])


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

    :meth:`arrays` converts one fetched batch to Arrow once, the NIR consumed into its
    facts; the extraction writes those arrays here (:meth:`write_arrays`) and hands them
    to the mapper, which takes the passage's unchanged text columns from them.
    """

    def __init__(
        self, fh, columns: list[str], chunk_rows: int = 50_000, today: dt.date | None = None
    ):
        import pyarrow.parquet as pq

        self.schema = file_schema()
        missing = [c for c in COLUMN_NAMES if c not in columns]
        if missing:
            raise ValueError(f"the source query lacks canonical columns: {', '.join(missing)}")
        self.positions = [columns.index(c) for c in COLUMN_NAMES]
        # Where the query returns the NIR (None: it does not); read by arrays() only.
        self.nir_positions = tuple(
            columns.index(c) if c in columns else None for c in NIR_SOURCE_COLUMNS
        )
        self.today = today or dt.date.today()
        self.names = (*COLUMN_NAMES, *NIR_COLUMN_NAMES)
        self.writer = pq.ParquetWriter(
            fh, self.schema, use_dictionary=dictionary_columns(self.schema)
        )
        self.chunk_rows = chunk_rows
        self.pending: list = []
        self.pending_rows = 0
        self.count = 0

    def arrays(self, columns: Sequence[Sequence[object]]) -> dict[str, Any]:
        """One batch, given column by column in the source order, as canonical Arrow
        arrays, plus the NIR facts (the NIR itself is not among them)."""
        from cpf_deposit.sources.nir import FACTS, nir_fact_arrays

        out = {
            name: _column(columns[pos], self.schema.field(name).type)
            for name, pos in zip(COLUMN_NAMES, self.positions, strict=True)
        }
        number_at, key_at = self.nir_positions
        facts = nir_fact_arrays(
            None if number_at is None else columns[number_at],
            None if key_at is None else columns[key_at],
            out["birth_date"],
            out["award_date"],
            today=self.today,
        )
        out.update(zip(NIR_COLUMN_NAMES, (facts[f] for f in FACTS), strict=True))
        return out

    def write_arrays(self, arrays: Mapping[str, Any]) -> None:
        import pyarrow as pa

        if any(c not in arrays for c in NIR_COLUMN_NAMES):  # no NIR facts given: absent
            from cpf_deposit.sources.nir import FACTS, nir_fact_arrays

            n = len(arrays[COLUMN_NAMES[0]])
            facts = nir_fact_arrays(None, None, pa.nulls(n, pa.date32()), None)
            arrays = {
                **arrays,
                **{c: facts[f] for c, f in zip(NIR_COLUMN_NAMES, FACTS, strict=True)},
            }
        table = pa.Table.from_arrays([arrays[c] for c in self.names], schema=self.schema)
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

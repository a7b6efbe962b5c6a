"""The batch path (columns, Arrow, SQLite JSON transport) equals the row path, exactly.

:meth:`RowMapper.map_values` is the reference, row by row. :meth:`RowMapper.map_batch`
must give the same passages, the same issues in the same order and the same unmapped
counts, from Python columns (Oracle, PostgreSQL) and from Arrow arrays (the SQLite
transport), on the edge cases of each rule.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpf_deposit.demo.build import write_demo
from cpf_deposit.passage_io import arrow_schema
from cpf_deposit.sources import extract as extract_module
from cpf_deposit.sources.birthplace import _LIGATURES, _NON_ALNUM, _TOKENS, normalise_label
from cpf_deposit.sources.canonical import CANONICAL_COLUMNS, COLUMN_NAMES, _column
from cpf_deposit.sources.certmap import CertificationMap
from cpf_deposit.sources.extract import extract, stream_columns, stream_rows
from cpf_deposit.sources.mapping import RowMapper

MAP = CertificationMap(
    [
        {"diploma_code": "LINFO", "diploma_version": "1", "certification_type": "RNCP",
         "certification_code": "RNCP24514"},
        {"diploma_code": "LDROIT", "diploma_version": "1", "first_year": "2016",
         "last_year": "2023", "certification_type": "RNCP", "certification_code": "RNCP24438"},
        {"diploma_code": "LDROIT", "diploma_version": "1", "first_year": "2024",
         "certification_type": "RNCP", "certification_code": "RNCP39869"},
        {"diploma_code": "CLES", "diploma_version": "", "certification_type": "RS",
         "certification_code": "RS5875"},
    ]
)  # fmt: skip
TYPES = {c.name: c.type for c in CANONICAL_COLUMNS}

text = st.one_of(st.none(), st.sampled_from(["", " ", "x"]), st.text(max_size=6))
date_text = st.one_of(
    st.none(),
    st.sampled_from(
        ["2023-06-20", "2023-06-20 00:00:00", "2023-06-20T10:00", " 2023-06-20 ", "2023-02-30",
         "20230620", "2023-W01-1", "", "1999-11-30", "1999-11-30 12:00:00"]
    ),
)  # fmt: skip
VALUES = {
    "source_system": st.sampled_from(["APOGEE", "GEODE"]),
    "source_record_key": st.text(min_size=1, max_size=8),
    "birth_name": text,
    "usage_name": text,
    "first_name_1": text,
    "first_name_2": text,
    "first_name_3": text,
    "sex": st.one_of(st.none(), st.sampled_from(["M", "F", "X"])),
    "birth_date": date_text,
    "birth_date_is_estimated": st.one_of(st.none(), st.sampled_from(["Y", "N", "y"])),
    "born_in_france": st.one_of(st.none(), st.sampled_from(["Y", "N", "?"])),
    "birth_department_code": st.one_of(
        st.none(), st.sampled_from(["072", "075", "020", "02A", "971", "", " 42"])
    ),
    "birth_commune_insee": st.one_of(
        st.none(), st.sampled_from(["72181", "75014", "2A004", " 97411 ", "", "99999"])
    ),
    "birth_city_label": st.one_of(
        st.none(),
        st.sampled_from(
            [
                "LE MANS",
                "Le Mans",
                "PARIS 14EME",
                "Paris",
                "St-Étienne",
                "BASTIA",
                "CŒUVRES",
                "ST DENIS",
                "   ",
                "NULLE-PART",
                "CASABLANCA",
                "LYON 3E",
            ]
        ),
    ),
    "birth_country_code": st.one_of(
        st.none(), st.sampled_from(["100", "350", "352", "999", " 350", "35", ""])
    ),
    "birth_country_label": st.one_of(st.none(), st.sampled_from(["MAROC", "", "ALGERIE"])),
    "certification_type": st.one_of(st.none(), st.sampled_from(["RNCP", "rs", "RS"])),
    "certification_code": st.one_of(st.none(), st.sampled_from(["24514", "RS5875", "rncp12"])),
    "diploma_code": st.one_of(st.none(), st.sampled_from(["LINFO", "LDROIT", "CLES", "X"])),
    "diploma_version": st.one_of(st.none(), st.sampled_from(["1", "2", ""])),
    "academic_year": st.one_of(st.none(), st.sampled_from([2015, 2020, 2023, 2024])),
    "mention_code": st.one_of(st.none(), st.sampled_from(["P", "AB", "TB", "HO", "Q9", ""])),
    "mention_label": st.one_of(
        st.none(), st.sampled_from(["Passable", "Assez Bien", "Très bien avec félicitations"])
    ),
    "access_mode_code": st.one_of(st.none(), st.sampled_from(["4", "9", "VAE", ""])),
    "award_date": date_text,
}
# Python values the drivers may return and Arrow could not carry in one column.
ODD = {
    **VALUES,
    "birth_date": st.one_of(
        date_text, st.just(dt.date(2001, 3, 14)), st.just(dt.datetime(1999, 11, 30, 12))
    ),
    "award_date": st.one_of(date_text, st.just(dt.datetime(2023, 7, 4)), st.just(17)),
    "diploma_version": st.one_of(st.none(), st.sampled_from(["1", 1, 1.0, 2])),
    "academic_year": st.one_of(st.none(), st.sampled_from([2023, "2024", 2020.0])),
    "access_mode_code": st.one_of(st.none(), st.sampled_from(["4", 4, "9"])),
    "source_record_key": st.one_of(st.text(min_size=1, max_size=5), st.integers(1, 99)),
}


def rows_of(values):
    row = st.fixed_dictionaries({c: values.get(c, st.none()) for c in COLUMN_NAMES})
    return st.lists(row, min_size=0, max_size=40).map(
        lambda rs: [tuple(r[c] for c in COLUMN_NAMES) for r in rs]
    )


ID_KEY = bytes(range(32))


def mapper():
    return RowMapper(
        list(COLUMN_NAMES),
        MAP,
        mention_map={"Q9": "MENTION_BIEN"},
        access_map={"4": "FORMATION_INITIALE_APPRENTISSAGE"},
        id_key=ID_KEY,
    )


def by_rows(rows):
    m = mapper()
    kept, issues = [], []
    for row in rows:
        values, found = m.map_values(row)
        issues.extend(found)
        if values is not None:
            kept.append(values)
    schema = arrow_schema()
    columns = list(zip(*kept, strict=True)) if kept else [()] * len(schema)
    table = pa.Table.from_arrays(
        [pa.array(c, type=schema.field(i).type) for i, c in enumerate(columns)], schema=schema
    )
    return table, issues, m.unmapped


def by_batch(columns, arrays=None):
    m = mapper()
    table, issues = m.map_batch(columns, arrays)
    return table, issues, m.unmapped


def arrow_columns(rows):
    """The batch as the SQLite transport gives it: raw Arrow arrays (dates as text)."""
    types = {"text": pa.string(), "int": pa.int64(), "date": pa.string()}
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMN_NAMES)
    return [pa.array(c, type=types[TYPES[n]]) for n, c in zip(COLUMN_NAMES, columns, strict=True)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_of(VALUES))
def test_batch_equals_rows_from_python_and_arrow_columns(rows):
    expected = by_rows(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMN_NAMES)
    assert by_batch(columns) == expected
    raw = arrow_columns(rows)
    assert by_batch(raw) == expected
    try:  # the canonical writer refuses some dates ('2023-02-30'): the run stops there
        canonical = {
            n: _column(a, t)
            for n, a, t in zip(COLUMN_NAMES, raw, arrow_canonical_types(), strict=True)
        }
    except pa.ArrowInvalid:
        return
    assert by_batch(raw, canonical) == expected


def arrow_canonical_types():
    from cpf_deposit.sources.canonical import arrow_schema as canonical_schema

    return [f.type for f in canonical_schema()]


@settings(max_examples=200, deadline=None)
@given(rows_of(ODD))
def test_batch_equals_rows_on_odd_driver_values(rows):
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMN_NAMES)
    assert by_batch(columns) == by_rows(rows)


def test_issue_order_and_unmapped_counts_follow_the_rows():
    base = dict.fromkeys(COLUMN_NAMES)
    base.update(source_system="APOGEE", birth_date="2001-01-01", born_in_france="Y",
                birth_commune_insee="72181", diploma_code="LINFO", diploma_version="1",
                academic_year=2022, award_date="2023-06-20")  # fmt: skip
    rows = [
        {**base, "source_record_key": "a", "diploma_code": "X", "award_date": None},
        {**base, "source_record_key": "b", "birth_date_is_estimated": "Y", "mention_code": "HO"},
        {**base, "source_record_key": "c", "diploma_code": "X", "access_mode_code": "9"},
    ]
    rows = [tuple(r[c] for c in COLUMN_NAMES) for r in rows]
    table, issues, unmapped = by_batch(list(zip(*rows, strict=True)))
    assert [(i.source_record_key, i.code) for i in issues] == [
        ("a", "award_date_missing"),
        ("b", "birth_date_estimated"),
        ("b", "mention_unmapped"),
        ("c", "access_mode_unmapped"),
    ]
    assert unmapped == {("X", "1", 2022): 2}
    assert table.column("source_record_key").to_pylist() == ["b"]
    assert (table, issues, unmapped) == by_rows(rows)


def test_a_row_without_key_is_refused_as_before():
    row = tuple("APOGEE" if c == "source_system" else None for c in COLUMN_NAMES)
    with pytest.raises(ValueError, match="source_record_key"):
        mapper().map_values(row)
    with pytest.raises(ValueError, match="source_record_key"):
        mapper().map_batch([(v,) for v in row])


def _slow_normalise(label: str) -> str:
    text = unicodedata.normalize("NFKD", label.translate(_LIGATURES))
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    return " ".join(_TOKENS.get(w, w) for w in _NON_ALNUM.sub(" ", text).split())


@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_the_ascii_fast_path_normalises_as_before(label):
    assert normalise_label(label) == _slow_normalise(label)


# ----------------------------------------------------------------------------------
# The SQLite transport: same values as the driver, same files as the Python path.
# ----------------------------------------------------------------------------------

NASTY = ["", " ", "a'b", 'a"b', "l1\nl2\r\n", "tab\t", "nul\x00x", "Œuf ÿ 😀", "\\u0041", "NULL"]


def _table(path, rows):
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE t ({', '.join(COLUMN_NAMES)})")
    conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(COLUMN_NAMES))})", rows)
    conn.commit()
    return conn


def _nasty_rows():
    rows = []
    for i, value in enumerate([*NASTY, None]):
        row = dict.fromkeys(COLUMN_NAMES, value)
        row.update(source_system="APOGEE", source_record_key=f"k{i}", academic_year=i or None)
        rows.append(tuple(row[c] for c in COLUMN_NAMES))
    return rows


@pytest.mark.parametrize("where", ["file", "memory"])
def test_the_json_transport_carries_the_driver_values(tmp_path, where):
    path = tmp_path / "t.sqlite" if where == "file" else ":memory:"
    conn = _table(path, _nasty_rows())
    sql = "SELECT * FROM t"
    expected = []
    for _, rows in stream_rows(conn, "sqlite", sql, {}, 4):
        expected.extend(rows)
    got = []
    with extract_module.closing(stream_columns(conn, "sqlite", sql, {}, 4)) as batches:
        for columns, batch in batches:
            assert columns == list(COLUMN_NAMES)
            assert all(isinstance(a, pa.Array) for a in batch)
            got.extend(zip(*(a.to_pylist() for a in batch), strict=True))
    assert got == expected
    conn.close()


def test_a_number_in_a_text_column_still_fails_the_run(tmp_path):
    row = dict.fromkeys(COLUMN_NAMES)
    row.update(source_system="APOGEE", source_record_key="k", birth_name=12)
    conn = _table(tmp_path / "t.sqlite", [tuple(row[c] for c in COLUMN_NAMES)])
    with pytest.raises(pa.ArrowInvalid):
        for _ in stream_columns(conn, "sqlite", "SELECT * FROM t", {}, 10):
            pass
    conn.close()


def test_closing_early_stops_the_reader_process(tmp_path):
    conn = _table(tmp_path / "t.sqlite", _nasty_rows() * 50)
    batches = stream_columns(conn, "sqlite", "SELECT * FROM t", {}, 7)
    next(batches)
    reader = batches._closer.__self__  # type: ignore[union-attr]
    batches.close()
    assert reader.proc.poll() is not None and not reader.thread.is_alive()
    conn.close()


def test_a_query_error_in_the_reader_keeps_its_sqlite_type(tmp_path):
    conn = _table(tmp_path / "t.sqlite", _nasty_rows())
    # Passes the probe (LIMIT 0) but fails while reading, on the later rows.
    sql = "SELECT t.*, abs(-9223372036854775807 - (t.academic_year > 5)) AS boom FROM t"
    with pytest.raises(sqlite3.OperationalError, match="overflow"):
        for _ in stream_columns(conn, "sqlite", sql, {}, 3):
            pass
    conn.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("batchdemo"), 1200, seed=5)


def test_extraction_files_equal_the_python_path(tmp_path, demo, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_BATCH", f"sqlite://{demo.apogee}")
    window = (dt.date(2020, 1, 1), dt.date(2026, 12, 31))
    fast = extract("apogee", "demo_batch", *window, tmp_path / "fast" / "out.parquet",
                   arraysize=500, id_key=ID_KEY)  # fmt: skip
    monkeypatch.setattr(extract_module, "_has_json", lambda conn: False)
    slow = extract("apogee", "demo_batch", *window, tmp_path / "slow" / "out.parquet",
                   arraysize=333, id_key=ID_KEY)  # fmt: skip
    assert fast.rows == slow.rows > 1000
    assert fast.by_code == slow.by_code
    for a, b in ((fast.out, slow.out), (fast.canonical_path, slow.canonical_path)):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert fast.issues_path.read_bytes() == slow.issues_path.read_bytes()

"""Load many rows into a transaction-local temp table, then act on them in set-based SQL.

Why: an annual run touches up to a million passages. Row-by-row statements cost a
round trip each; a temp table loaded with COPY (PostgreSQL) or ``executemany``
(SQLite) and joined by a few statements is one to two orders of magnitude faster,
and the same SQL serves both databases.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rows: Iterable[Sequence]) -> str:
    """COPY text format; values are escaped only when a row holds a special character."""
    lines = []
    for row in rows:
        values = ["\\N" if v is None else v if isinstance(v, str) else str(v) for v in row]
        line = "\t".join(values)
        plain = (
            line.count("\\") == sum(v is None for v in row)
            and line.count("\t") == len(values) - 1
            and "\n" not in line
            and "\r" not in line
        )
        if not plain:
            line = "\t".join(
                "\\N" if v is None else values[i].translate(_COPY_ESCAPES)
                for i, v in enumerate(row)
            )
        lines.append(line)
    lines.append("")
    return "\n".join(lines)


def load_temp(
    conn: Connection,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence],
    *,
    analyze: bool = False,
) -> int:
    """Create temp table ``name`` with ``columns`` [(name, sql type)] and fill it; row count.

    ``analyze``: give PostgreSQL the table's statistics. Without them it takes a temp
    table for small and probes the other side's index once per row, which is right
    for a chunk of the delta and wrong for a file's 200 000 idTechniques.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    cols_sql = ", ".join(f"{c} {t}" for c, t in columns)
    names = ", ".join(c for c, _ in columns)
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols_sql}) ON COMMIT DROP")
        if rows:
            raw = conn.connection.driver_connection
            cur = raw.cursor()
            sql = f"COPY {name} ({names}) FROM STDIN"
            if hasattr(cur, "copy_expert"):  # psycopg2
                cur.copy_expert(sql, io.StringIO(_copy_text(rows)))
            else:  # psycopg 3
                with cur.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            cur.close()
            if analyze:  # temp tables are never auto-analyzed
                conn.exec_driver_sql(f"ANALYZE {name}")
    else:
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols_sql})")
        if rows:
            marks = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f"INSERT INTO {name} ({names}) VALUES ({marks})", rows)
    return len(rows)

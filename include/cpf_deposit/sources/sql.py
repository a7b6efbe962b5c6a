"""Source SQL files: read at run time, transpiled for the database behind a connection.

Why sqlglot: the Apogée query is written once in Oracle SQL (production) and must run
unchanged in meaning on SQLite (demo, tests) and PostgreSQL. Binds stay ``:name`` for
Oracle and SQLite; PostgreSQL drivers (psycopg 2 and 3) want ``%(name)s`` and a
literal ``%`` doubled, which :func:`prepare_sql` handles on the syntax tree.
"""

from __future__ import annotations

from importlib import resources

SOURCE_DIALECT = {"apogee": "oracle", "geode": "oracle", "pegase": "postgres"}

# Airflow conn_type to sqlglot dialect.
CONN_DIALECT = {
    "oracle": "oracle",
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
}


def load_sql(system: str) -> str:
    """The query of a source system, as shipped in ``cpf_deposit/sql/<system>.sql``."""
    if system not in SOURCE_DIALECT:
        raise ValueError(f"unknown source system {system!r}: {', '.join(SOURCE_DIALECT)}")
    return (resources.files("cpf_deposit") / "sql" / f"{system}.sql").read_text("utf-8")


def prepare_sql(sql: str, read: str, write: str) -> str:
    """Parse ``sql`` in dialect ``read`` and render it for ``write`` (comments dropped)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read=read)
    if write == "postgres":
        for lit in tree.find_all(exp.Literal):
            if lit.is_string and "%" in lit.this:
                lit.set("this", lit.this.replace("%", "%%"))
    return tree.sql(dialect=write, comments=False)


def query_for(system: str, conn_type: str) -> str:
    """The query of ``system`` ready to run on a connection of ``conn_type``."""
    try:
        target = CONN_DIALECT[conn_type]
    except KeyError:
        raise ValueError(
            f"connection type {conn_type!r} not supported: {', '.join(CONN_DIALECT)}"
        ) from None
    return prepare_sql(load_sql(system), SOURCE_DIALECT[system], target)

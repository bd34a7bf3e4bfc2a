"""Rows written with PostgreSQL's COPY, for the edge's batches of history rows and log lines.

An executemany still costs a Bind/Execute and its Python bookkeeping per row; COPY streams the
rows in one command, formatted by psycopg's C code. The rows join the session's transaction
like any other statement (they commit or roll back with it) but skip the ORM entirely: no
defaults are applied, so callers give every column that needs a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


def copy_rows(
    session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    names = psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(column) for column in columns)
    statement = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(psycopg.sql.Identifier(table), names)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        # As SQLAlchemy raises for its own statements (IntegrityError for a refused row...).
        raise DBAPIError.instance(statement.as_string(driver), None, exc, psycopg.Error) from exc

"""One definition of an API object's fields, read two ways: from a row in Python (the API's and the
dashboard's answers) and as PostgreSQL's `json_build_object` (the archive, where the database
writes each line's JSON: a million history rows stream at several times the rate Python builds and
encodes them, services/archive.py).

A field names its JSON key, its column and how the value is shown: as stored (`PLAIN`: text,
numbers, booleans, arrays, null), as an API time (`TIME`: UTC ISO 8601 with `Z`, microseconds only
when there are any, exactly as `paging.iso_time` writes it) or as text (`TEXT`: a UUID). `when`
keeps a value only while another column holds one of some values (a recipient's next attempt,
shown only while it is pending). The JSON the two ways write parses to the same object (the
database's spacing and escapes of control characters may differ; tests/dashboard check both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    String,
    case,
    cast,
    func,
    literal,
    literal_column,
)

from .paging import iso_time

PLAIN = "plain"
TIME = "time"
TEXT = "text"


@dataclass(frozen=True)
class Field:
    name: str
    column: str
    kind: str = PLAIN
    when: tuple[str, tuple[str, ...]] | None = None
    """(column, values): the value is null unless that column holds one of the values."""


def field_value(field: Field, row: Any) -> Any:
    if field.when is not None and getattr(row, field.when[0]) not in field.when[1]:
        return None
    value = getattr(row, field.column)
    if field.kind == TIME:
        return iso_time(value)
    if field.kind == TEXT:
        return None if value is None else str(value)
    return list(value) if isinstance(value, list) else value


def as_dict(fields: Sequence[Field], row: Any) -> dict[str, Any]:
    """The object from a row (an ORM object or any row with the columns as attributes)."""
    return {field.name: field_value(field, row) for field in fields}


def sql_time(column: ColumnElement[Any]) -> ColumnElement[str]:
    """`iso_time` in SQL: `2026-12-01T10:00:00Z`, or `...:00.123400Z` when there are microseconds."""
    utc = func.timezone("UTC", column)
    micros = func.mod(cast(func.date_part("microseconds", column), BigInteger), 1_000_000)
    fraction = case((micros == 0, literal("")), else_=func.to_char(utc, ".US"))
    return func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS').op("||")(fraction).op("||")(literal("Z"))


def sql_value(field: Field, table: FromClause) -> ColumnElement[Any]:
    column = table.c[field.column]
    value: ColumnElement[Any]
    if field.kind == TIME:
        value = sql_time(column)
    elif field.kind == TEXT:
        value = cast(column, String)
    else:
        value = column
    if field.when is not None:
        value = case((table.c[field.when[0]].in_(field.when[1]), value), else_=None)
    return value


def _key(name: str) -> ColumnElement[str]:
    assert name.replace("_", "").isalnum(), name  # keys are the code's own names, never input
    return literal_column(f"'{name}'", String)


def json_object(
    fields: Sequence[Field], table: FromClause, *, kind: str | None = None, **more: ColumnElement[Any]
) -> ColumnElement[Any]:
    """`json_build_object` of `"type": kind` (when given), the fields, then `more` (name to an
    SQL value)."""
    pairs: list[Any] = [_key("type"), _key(kind)] if kind else []
    for field in fields:
        pairs += [_key(field.name), sql_value(field, table)]
    for name, value in more.items():
        pairs += [_key(name), value]
    return func.json_build_object(*pairs)

"""Re-encrypting every stored secret under the current ENCRYPTION_KEY: the second half of a rotation.

A rotation deploys the new key as ENCRYPTION_KEY with the old one in ENCRYPTION_KEYS_OLD (both
decrypt, only the new one encrypts), then runs this (`flask --app provider secrets rotate`),
then removes the old key. The secrets are the binary columns named `*_enc` (provider/crypto.py);
they are found in the models' metadata, so a secret column added later is covered without
touching this module.

Each table is walked in primary-key order, one batch of rows per transaction, the batch locked
(FOR UPDATE) so that a concurrent write (an OAuth token refresh) is either waited for or comes
after, and is never overwritten with the value read before it. A value the current key already
decrypts is left alone: running again after an interruption finishes the rest, and a run that
re-encrypts nothing shows the old keys can go. A value no configured key decrypts is counted and
left as it is (nothing is lost, and the caller refuses to call the rotation done).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, LargeBinary, MetaData, Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ..crypto import DecryptionError, SecretBox
from ..models import Base

ENCRYPTED_SUFFIX = "_enc"
DEFAULT_BATCH = 500


@dataclass
class ColumnReport:
    """What one run did to one column's values (NULLs are not counted)."""

    table: str
    column: str
    reencrypted: int = 0
    current: int = 0
    undecryptable: int = 0


def encrypted_columns(metadata: MetaData = Base.metadata) -> Iterator[tuple[Table, list[Column[Any]]]]:
    """Every table holding secrets, with its secret columns, in a stable order."""
    for table in metadata.sorted_tables:
        columns = [
            column
            for column in table.columns
            if column.name.endswith(ENCRYPTED_SUFFIX) and isinstance(column.type, LargeBinary)
        ]
        if columns:
            yield table, columns


def reencrypt_all(
    session: Session, box: SecretBox, *, batch_size: int = DEFAULT_BATCH
) -> list[ColumnReport]:
    """Re-encrypt every secret not yet under the current key; commits once per batch."""
    reports: list[ColumnReport] = []
    for table, columns in encrypted_columns():
        reports.extend(_reencrypt_table(session, box, table, columns, batch_size))
    return reports


def _reencrypt_table(
    session: Session, box: SecretBox, table: Table, columns: list[Column[Any]], batch_size: int
) -> list[ColumnReport]:
    (key,) = table.primary_key.columns  # keyset pagination needs a single-column key
    reports = {column.name: ColumnReport(table.name, column.name) for column in columns}
    values: dict[str, Any] = {column.name: bindparam(f"new_{column.name}") for column in columns}
    if "updated_at" in table.columns:
        values["updated_at"] = table.columns["updated_at"]  # not a change anyone made
    write = update(table).where(key == bindparam("row_key")).values(values)
    last: Any = None
    while True:
        query = select(key, *columns).where(or_(*(c.is_not(None) for c in columns)))
        if last is not None:
            query = query.where(key > last)
        rows = session.execute(query.order_by(key).limit(batch_size).with_for_update()).all()
        if not rows:
            session.rollback()
            return list(reports.values())
        changed = []
        for row in rows:
            new = {f"new_{c.name}": _reencrypted(box, row._mapping[c], reports[c.name]) for c in columns}
            if any(new[f"new_{c.name}"] is not row._mapping[c] for c in columns):
                changed.append({"row_key": row._mapping[key], **new})
        if changed:
            session.execute(write, changed)
        session.commit()
        last = rows[-1]._mapping[key]


def _reencrypted(box: SecretBox, token: bytes | None, report: ColumnReport) -> bytes | None:
    """The value to store: `token` itself unless it had to move to the current key."""
    if token is None:
        return None
    if box.is_current(token):
        report.current += 1
        return token
    try:
        fresh = box.reencrypt(token)
    except DecryptionError:
        report.undecryptable += 1
        return token
    report.reencrypted += 1
    return fresh

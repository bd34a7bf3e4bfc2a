"""credential keys stored encrypted

Until now a credential's key was HMAC-SHA256(ENCRYPTION_KEY, label + username), computed again
whenever the config was answered, so rotating ENCRYPTION_KEY would have changed the key in a
repeated answer. From here every credential keeps its key encrypted in `key_enc` (see
provider/services/credentials.py for why stored beats derived). This fills `key_enc` for the
live credentials that exist: their keys are derived the old way, here, for the last time.

The derivation is frozen in this file on purpose (the application no longer has it). Which
ENCRYPTION_KEY derived a key is not assumed: ENCRYPTION_KEY and then every ENCRYPTION_KEYS_OLD
is tried, and a key is stored only if its SHA-256 is the stored hash, so a release that both
rotates the key and runs this migration still recovers every key. A credential no configured
key matches keeps `key_enc` NULL: it still authenticates (by its hash), and the next config
answer for its add-on carries a new credential (logged here as a count).

Downgrading drops the column; keys issued after this migration are random, so after a
downgrade a repeated answer for them would carry a different (derived) key.

Revision ID: 0003_credential_key
Revises: 0002
Create Date: 2026-12-01 09:30:00

"""
import hashlib
import hmac
import logging

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = '0003_credential_key'
down_revision = '0002'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')

_LEGACY_LABEL = b"cloudmailin credential key v1:"
_BATCH = 1000


def legacy_key(encryption_key: str, username: str) -> str:
    """The key every credential issued before this migration was given."""
    digest = hmac.new(
        encryption_key.encode("ascii"), _LEGACY_LABEL + username.encode("utf-8"), hashlib.sha256
    )
    return digest.hexdigest()[:32]


def upgrade():
    op.add_column('credentials', sa.Column('key_enc', sa.LargeBinary(), nullable=True))
    if op.get_context().as_sql:
        log.warning("0003_credential_key: offline (--sql) upgrade cannot fill credentials.key_enc; "
                    "existing add-ons will get new credentials on their next config answer")
        return
    _backfill(op.get_bind())


def _backfill(connection):
    from provider.crypto import box_for

    settings = current_app.extensions["cloudmailin_settings"]
    box = box_for(settings)
    candidates = [settings.encryption_key, *settings.encryption_keys_old]
    select = sa.text(
        "SELECT id, username, key_hash FROM credentials"
        " WHERE id > :last AND revoked_at IS NULL AND expires_at IS NULL AND key_enc IS NULL"
        " ORDER BY id LIMIT :batch"
    )
    update = sa.text("UPDATE credentials SET key_enc = :key_enc WHERE id = :id")
    last, filled, unmatched = 0, 0, 0
    while rows := connection.execute(select, {"last": last, "batch": _BATCH}).all():
        found = []
        for row in rows:
            key = _recover(candidates, row.username, row.key_hash)
            if key is None:
                unmatched += 1
            else:
                found.append({"id": row.id, "key_enc": box.encrypt(key)})
        if found:
            connection.execute(update, found)
        filled += len(found)
        last = rows[-1].id
    log.info("0003_credential_key: stored %d credential keys", filled)
    if unmatched:
        log.warning("0003_credential_key: %d credential keys match no configured ENCRYPTION_KEY; "
                    "those add-ons get a new credential on their next config answer", unmatched)


def _recover(candidates, username, key_hash):
    for encryption_key in candidates:
        key = legacy_key(encryption_key, username)
        if hmac.compare_digest(hashlib.sha256(key.encode("utf-8")).hexdigest(), key_hash):
            return key
    return None


def downgrade():
    op.drop_column('credentials', 'key_enc')

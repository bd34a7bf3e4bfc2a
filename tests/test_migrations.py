"""The migrations, applied to a real database, produce exactly the schema the models describe and
keep the data they move."""

import dataclasses
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from provider import create_app
from provider.crypto import SecretBox, hash_key, new_encryption_key
from provider.extensions import db
from provider.models import Base, Resource
from provider.services.credentials import authenticate
from provider.services.provisioning import config_for
from provider.settings import Settings


def test_models_and_migrations_agree(migrated):
    engine = create_engine(migrated.database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations; add a migration: {diff}"


# --- 0003_credential_key: keys issued before it are kept, and answered again ---------------------

# Pinned vectors of the derivation every key issued before 0003 has: HMAC-SHA256 of the
# label and username under ENCRYPTION_KEY, in both forms the key takes.
FERNET_FORM = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
HEX_FORM = bytes(range(32, 64)).hex()
VECTORS = (
    (FERNET_FORM, "0123456789abcdef0123", "d2e70324ee702aff03e0af929ca1117e"),
    (HEX_FORM, "fedcba9876543210fedc", "18c34d1e169352836202d6f8cf5b7c01"),
)


@contextmanager
def _scratch_database(settings: Settings) -> Iterator[str]:
    """An empty database on the suite's server, dropped afterwards."""
    name = f"migration_{uuid.uuid4().hex[:12]}"
    server = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()


def _upgrade(settings: Settings, revision: str) -> None:
    app = create_app(settings)
    with app.app_context():
        upgrade(revision=revision)
        db.engine.dispose()


def _insert_legacy_credentials(url: str, rows: list[tuple[str, str, str]]) -> None:
    """Credentials as the code before 0003 stored them: username and hash, nothing else."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for resource_id, username, key in rows:
            conn.execute(
                text("INSERT INTO resources (id, plan, state, options, created_at, updated_at)"
                     " VALUES (:id, 'starter', 'provisioned', '{}', now(), now())"
                     " ON CONFLICT DO NOTHING"),
                {"id": resource_id},
            )
            conn.execute(
                text("INSERT INTO credentials (resource_id, username, key_hash, created_at, updated_at)"
                     " VALUES (:r, :u, :h, now(), now())"),
                {"r": resource_id, "u": username, "h": hash_key(key)},
            )
    engine.dispose()


def _stored_keys(url: str) -> dict[str, bytes | None]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT username, key_enc FROM credentials")).all()
    engine.dispose()
    return {row.username: row.key_enc for row in rows}


def test_keys_issued_before_0003_are_stored_encrypted_and_answered_again(migrated):
    for encryption_key, username, expected_key in VECTORS:
        resource_id = str(uuid.uuid4())
        with _scratch_database(migrated) as url:
            settings = dataclasses.replace(migrated, database_url=url, encryption_key=encryption_key)
            _upgrade(settings, "0002")
            _insert_legacy_credentials(url, [(resource_id, username, expected_key)])
            _upgrade(settings, "head")
            key_enc = _stored_keys(url)[username]
            assert key_enc is not None
            assert SecretBox(encryption_key).decrypt(key_enc) == expected_key

            engine = create_engine(url)
            with Session(engine) as session:
                resource = session.get(Resource, resource_id)
                assert resource is not None
                config = config_for(session, settings, resource)
                assert config["CLOUDMAILIN_SMTP_URL"].startswith(f"smtp://{username}:{expected_key}@")
                assert authenticate(session, username, expected_key) is resource
            engine.dispose()


def test_0003_tries_the_old_keys_too_and_leaves_an_unmatched_key_unset(migrated):
    old_key, unknown_key = FERNET_FORM, new_encryption_key()
    _, old_user, old_expected = VECTORS[0]
    with _scratch_database(migrated) as url:
        before = dataclasses.replace(migrated, database_url=url, encryption_key=old_key)
        _upgrade(before, "0002")
        lost_resource, lost_key = str(uuid.uuid4()), secrets.token_hex(16)
        _insert_legacy_credentials(url, [
            (str(uuid.uuid4()), old_user, old_expected),
            (lost_resource, "aaaaaaaaaaaaaaaaaaaa", lost_key),  # derived from no key we hold
        ])
        # The release that runs 0003 already carries a new ENCRYPTION_KEY.
        rotated = dataclasses.replace(
            before, encryption_key=unknown_key, encryption_keys_old=(old_key,)
        )
        _upgrade(rotated, "head")
        stored = _stored_keys(url)
        assert SecretBox(unknown_key).decrypt(stored[old_user] or b"") == old_expected
        assert stored["aaaaaaaaaaaaaaaaaaaa"] is None

        engine = create_engine(url)
        with Session(engine) as session:
            resource = session.get(Resource, lost_resource)
            assert resource is not None
            answer = urlsplit(config_for(session, rotated, resource)["CLOUDMAILIN_SMTP_URL"])
            session.commit()
            assert answer.username != "aaaaaaaaaaaaaaaaaaaa"
            assert authenticate(session, answer.username or "", answer.password or "") is resource
            assert authenticate(session, "aaaaaaaaaaaaaaaaaaaa", lost_key) is resource
        engine.dispose()

"""An address's S3-compatible store through the addresses API, against a real SeaweedFS."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.crypto import SecretBox
from provider.models import Resource
from provider.settings import Settings
from tests.conftest import STORE_BUCKET

from .test_addresses_api import Account, new_account, patch, refusal, stored


def store_body(s3: S3Server, key_prefix: str, **changes: Any) -> dict[str, Any]:
    return {
        "bucket": STORE_BUCKET,
        "prefix": key_prefix,
        "endpoint_url": s3.endpoint_url,
        "access_key_id": s3.access_key_id,
        "secret_access_key": s3.secret_access_key,
        **changes,
    }


def objects(s3: S3Server, prefix: str) -> list[str]:
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3.access_key_id, aws_secret_access_key=s3.secret_access_key,
    )
    listing = client.list_objects_v2(Bucket=STORE_BUCKET, Prefix=prefix + "/")
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)  # a starter plan


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_saving_a_store_answers_it_without_its_secrets_and_keeps_them_encrypted(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str,
    db_session: Session, settings: Settings,
) -> None:
    response = patch(client, account, {"store": store_body(s3_server, prefix, messages=True)})

    assert response.status_code == 200, response.get_json()
    shown = response.get_json()["store"]
    assert shown == {
        "bucket": STORE_BUCKET,
        "prefix": prefix,
        "region": "us-east-1",
        "endpoint_url": s3_server.endpoint_url,
        "access_key_id": "••••" + s3_server.access_key_id[-4:],
        "secret_access_key": "•••",
        "attachments": True,
        "messages": True,
    }
    assert s3_server.secret_access_key not in response.get_data(as_text=True)
    listed = client.get(account.url(account.address_id), headers=account.auth()).get_json()
    assert listed["store"] == shown
    row = stored(db_session, account.address_id)
    assert row.store_secret_access_key_enc is not None and row.store_access_key_id_enc is not None
    assert s3_server.secret_access_key.encode() not in row.store_secret_access_key_enc
    box = SecretBox(settings.encryption_key)
    assert box.decrypt(row.store_secret_access_key_enc) == s3_server.secret_access_key
    assert box.decrypt(row.store_access_key_id_enc) == s3_server.access_key_id
    assert objects(s3_server, prefix) == []  # the test object was written and deleted again


def test_a_wrong_secret_is_422_with_the_stores_error_and_nothing_is_saved(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str, db_session: Session
) -> None:
    body = store_body(s3_server, prefix, secret_access_key="not-the-secret")

    error = refusal(patch(client, account, {"store": body}), 422)

    assert "SignatureDoesNotMatch" in error and STORE_BUCKET in error
    assert stored(db_session, account.address_id).store_bucket is None


def test_a_bucket_that_does_not_exist_is_422_naming_the_stores_error(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str, db_session: Session
) -> None:
    body = store_body(s3_server, prefix, bucket="no-such-bucket")

    error = refusal(patch(client, account, {"store": body}), 422)

    assert "NoSuchBucket" in error and "no-such-bucket" in error
    assert stored(db_session, account.address_id).store_bucket is None


def test_an_unreachable_endpoint_is_422_at_once(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str, settings: Settings
) -> None:
    body = store_body(s3_server, prefix, endpoint_url="http://127.0.0.1:9")

    error = refusal(patch(client, account, {"store": body}), 422)

    assert "EndpointConnectionError" in error or "Could not connect" in error


def test_the_free_plan_is_refused_naming_the_plan(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str, db_session: Session
) -> None:
    resource = db_session.get(Resource, account.resource_id)
    assert resource is not None
    resource.plan = "free"
    db_session.commit()

    error = refusal(patch(client, account, {"store": store_body(s3_server, prefix)}), 403)

    assert "free plan" in error
    assert stored(db_session, account.address_id).store_bucket is None


def test_a_later_change_keeps_the_credentials_it_leaves_out_and_null_removes_the_store(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str, db_session: Session
) -> None:
    assert patch(client, account, {"store": store_body(s3_server, prefix)}).status_code == 200

    changed = patch(client, account, {"store": {"prefix": prefix + "/inner", "messages": True}})

    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["store"]["prefix"] == prefix + "/inner"
    assert changed.get_json()["store"]["messages"] is True
    removed = patch(client, account, {"store": None})
    assert removed.status_code == 200 and removed.get_json()["store"] is None
    row = stored(db_session, account.address_id)
    assert row.store_bucket is None and row.store_secret_access_key_enc is None


@pytest.mark.parametrize(
    ("store", "words"),
    [
        ({"bucket": "Bad_Bucket"}, "store.bucket"),
        ({"secret_access_key": "•••"}, "masked"),
        ({"access_key_id": "••••-key"}, "masked"),
        ({"endpoint_url": "ftp://127.0.0.1"}, "store.endpoint_url"),
        ({"prefix": "a/../b"}, "store.prefix"),
        ({"attachments": "yes"}, "store.attachments"),
        ({"buckets": "x"}, "Unknown store field"),
    ],
)
def test_bad_store_fields_are_422_saying_which(
    client: FlaskClient, account: Account, s3_server: S3Server, prefix: str,
    store: dict[str, Any], words: str,
) -> None:
    assert words in refusal(patch(client, account, {"store": store_body(s3_server, prefix, **store)}), 422)


def test_a_first_store_needs_bucket_and_credentials(
    client: FlaskClient, db_session: Session, settings: Settings
) -> None:
    account = new_account(db_session, settings)
    assert "store.access_key_id is required" in refusal(
        patch(client, account, {"store": {"bucket": STORE_BUCKET}}), 422
    )

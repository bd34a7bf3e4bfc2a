"""Helpers for calling the partner API the way Heroku does (Basic auth, the add-ons media type)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from flask.testing import FlaskClient
from rq import Queue
from werkzeug.test import TestResponse

from provider.settings import Settings
from provider.tasks import PROVISIONING_QUEUE, redis_connection

ADDONS_MEDIA_TYPE = "application/vnd.heroku-addons+json; version=3"
TARGET = "https://yourapp.herokuapp.com/incoming_messages"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def heroku_headers(settings: Settings) -> dict[str, str]:
    return {**basic(settings.addon_id, settings.addon_password), "Accept": ADDONS_MEDIA_TYPE}


def provision_body(resource_uuid: str | None = None, **fields: Any) -> dict[str, Any]:
    resource_uuid = resource_uuid or str(uuid.uuid4())
    body: dict[str, Any] = {
        "uuid": resource_uuid,
        "name": "cloudmailin-shaped-12345",
        "plan": "starter",
        "region": "amazon-web-services::us-east-1",
        "callback_url": f"https://api.heroku.com/addons/{resource_uuid}",
        "oauth_grant": {
            "code": "grant-code-123",
            "expires_at": "2099-03-03T18:01:31-0800",
            "type": "authorization_code",
        },
        "options": {"target": TARGET},
        "log_input_url": "https://token:t.abc@127.0.0.1:9/logs",
        "heroku_id": "app123@heroku.com",
    }
    body.update(fields)
    return body


def send(
    client: FlaskClient,
    settings: Settings,
    method: str,
    path: str = "/heroku/resources",
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> TestResponse:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = heroku_headers(settings)
    if data is not None:
        headers["Content-Type"] = ADDONS_MEDIA_TYPE
    return client.open(path, method=method, data=data, headers=headers)


def provision(client: FlaskClient, settings: Settings, **fields: Any) -> TestResponse:
    return send(client, settings, "POST", body=provision_body(**fields))


def queued(
    settings: Settings, queue: str = PROVISIONING_QUEUE
) -> list[tuple[str, tuple[Any, ...]]]:
    jobs = Queue(queue, connection=redis_connection(settings.redis_url)).jobs
    return [(job.func_name, tuple(job.args)) for job in jobs]

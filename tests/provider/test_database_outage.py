"""PostgreSQL goes away under the web process (spec/heroku.md: `503 {"message"}` when temporarily
unable; Heroku retries): every caller gets a 503 with Retry-After in its own shape, nothing is half
done, and the service answers again as soon as PostgreSQL is back, without a restart.

The outage is real: the module's own PostgreSQL stopped with `pg_ctl stop -m immediate` while the
app holds pooled connections to it (the first request after the stop meets a connection that died
under it; the next ones cannot connect at all), then started again.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from provider import create_app
from provider.db import libpq_url
from provider.extensions import db
from provider.settings import Settings
from tests.private_postgres import PrivatePostgres

from .partner import provision, send
from .sso_fields import fields

MESSAGE = "CloudMailin cannot reach its database right now; try again in a few seconds"


@pytest.fixture
def outage_app(outage_db: tuple[PrivatePostgres, Settings]) -> Iterator[Flask]:
    app = create_app(outage_db[1])
    yield app
    with app.app_context():
        from provider.extensions import db

        db.engine.dispose()


@pytest.fixture
def web(outage_app: Flask) -> FlaskClient:
    return outage_app.test_client()


@pytest.fixture
def outage_settings(outage_db: tuple[PrivatePostgres, Settings]) -> Settings:
    return outage_db[1]


def _assert_503_message(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert response.is_json
    assert response.get_json() == {"message": MESSAGE}


def test_the_partner_api_answers_503_with_retry_after_while_postgresql_is_down_then_recovers(
    web: FlaskClient, outage_settings: Settings, pg: PrivatePostgres
) -> None:
    existing = provision(web, outage_settings).json["id"]  # leaves a pooled connection behind
    pg.stop_immediately()
    refused_uuid = str(uuid.uuid4())
    _assert_503_message(provision(web, outage_settings, resource_uuid=refused_uuid))  # dead pooled one
    _assert_503_message(provision(web, outage_settings, resource_uuid=refused_uuid))  # cannot connect
    _assert_503_message(send(web, outage_settings, "PUT", f"/heroku/resources/{existing}",
                             {"plan": "premium"}))
    _assert_503_message(send(web, outage_settings, "DELETE", f"/heroku/resources/{existing}"))
    pg.start()
    # Heroku's retry of the refused provision now succeeds, as a first provision.
    assert provision(web, outage_settings, resource_uuid=refused_uuid).status_code == 201
    assert send(web, outage_settings, "PUT", f"/heroku/resources/{existing}",
                {"plan": "premium"}).status_code == 200


def test_the_history_api_answers_503_in_its_error_shape_then_recovers(
    web: FlaskClient, outage_settings: Settings, pg: PrivatePostgres
) -> None:
    smtp_url = urlsplit(provision(web, outage_settings).json["config"]["CLOUDMAILIN_SMTP_URL"])
    path = f"/api/v0.1/{smtp_url.username}/incoming_statuses"
    headers = {"Authorization": f"Bearer {smtp_url.password}"}
    assert web.get(path, headers=headers).status_code == 200
    pg.stop_immediately()
    for _ in range(2):  # the pooled connection dies under the first; the second cannot connect
        response = web.get(path, headers=headers)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.get_json() == {"status": 503, "error": MESSAGE}
    pg.start()
    response = web.get(path, headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"incoming_statuses": []}


def test_the_dashboard_and_sso_show_a_page_saying_to_retry_and_health_fails_then_recovers(
    web: FlaskClient, outage_settings: Settings, pg: PrivatePostgres
) -> None:
    resource_id = provision(web, outage_settings).json["id"]
    assert web.post("/sso/login", data=fields(resource_id, outage_settings.sso_salt)).status_code == 302
    assert web.get("/dashboard").status_code == 200
    pg.stop_immediately()
    for response in (
        web.get("/dashboard"),
        web.post("/sso/login", data=fields(resource_id, outage_settings.sso_salt)),
    ):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.mimetype == "text/html"
        page = response.get_data(as_text=True)
        assert "temporarily unavailable" in page and MESSAGE in page
    health = web.get("/healthz")
    assert health.status_code == 503
    assert health.get_json() == {"message": MESSAGE}
    pg.start()
    assert web.get("/healthz").status_code == 200
    assert web.get("/dashboard").status_code == 200


def test_a_database_host_that_never_answers_costs_a_request_the_connect_timeout_not_for_ever(
    settings: Settings,
) -> None:
    """A host that takes the connection and never speaks (a hung server, a black-holed route):
    the request answers 503 once the connect timeout (5 s) is up."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=8)  # listens, never accepts or answers
    port = silent.getsockname()[1]
    app = create_app(dataclasses.replace(
        settings, database_url=f"postgresql://cloudmailin@127.0.0.1:{port}/cloudmailin"))
    answers: list[int] = []
    request = threading.Thread(
        target=lambda: answers.append(provision(app.test_client(), settings).status_code), daemon=True
    )
    try:
        request.start()
        request.join(timeout=60)
        assert answers == [503]
    finally:
        silent.close()  # frees a request still waiting (before the fix), which then fails at once
        request.join(timeout=60)


def test_sending_answers_503_and_stores_nothing_while_postgresql_is_down_then_accepts_again(
    outage_db: tuple[PrivatePostgres, Settings], pg: PrivatePostgres
) -> None:
    settings = dataclasses.replace(outage_db[1], sending_domain_verification=False)
    app = create_app(settings)
    web = app.test_client()
    smtp_url = urlsplit(provision(web, settings).json["config"]["CLOUDMAILIN_SMTP_URL"])
    path = f"/api/v0.1/{smtp_url.username}/messages"
    headers = {"Authorization": f"Bearer {smtp_url.password}"}
    body = {"from": "orders@shop.example", "to": "ann@example.com", "plain": "Hi"}
    assert web.post(path, json=body, headers=headers).status_code == 202
    pg.stop_immediately()
    for _ in range(2):
        response = web.post(path, json=body, headers=headers)
        assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
        assert response.get_json() == {"status": 503, "error": MESSAGE}
    pg.start()
    assert web.post(path, json=body, headers=headers).status_code == 202
    # Counted on a connection of its own: the app's pooled ones may predate the restart.
    with psycopg.connect(libpq_url(settings.database_url)) as connection:
        assert connection.execute("SELECT count(*) FROM outbound_messages").fetchone() == (2,)
    with app.app_context():
        db.engine.dispose()

"""The OpenAPI document (provider/api_spec/openapi.json) describes the API the app really serves:
it is valid OpenAPI 3.1, it has every route registered under /api/v0.1 and no other, its enums are
the code's, its examples are accepted, and real answers of the main operations (successes and
errors) validate against the schemas it gives for their status codes."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.orm import Session

from provider import create_app
from provider.api_spec import document
from provider.models.address import FORMATS
from provider.models.outbound import RECIPIENT_STATES
from provider.outbound.dsn import DeliveryReport, RecipientStatus
from provider.outbound.limits import PRIORITIES
from provider.outbound.request import FIELDS, IGNORED_FIELDS
from provider.services import inbound_domains, sending_domains
from provider.services.bounces import record_report
from provider.services.events_webhook import KINDS, pending_batch
from provider.services.history import Delivery
from provider.settings import Settings
from provider.views import inbound_domains_api, sending_domains_api
from tests.dnsserver import DnsServer
from tests.domain_rows import record_delivery
from tests.outbound.conftest import Account, new_account
from tests.outbound.sent import sent_message

DOC = document()
DOC_URI = "urn:cloudmailin:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(DOC_URI, Resource(contents=DOC, specification=DRAFT202012))
PREFIX = DOC["servers"][0]["url"]
METHODS = {"get", "put", "post", "delete", "patch"}


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1")
    validate_openapi(DOC)


def _documented() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOC["paths"].items() for method in item if method in METHODS}


def _registered(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        routes |= {(path, method.lower()) for method in rule.methods or () if method.lower() in METHODS}
    return routes


def test_every_route_under_the_api_prefix_is_documented_and_every_documented_one_exists(app: Flask) -> None:
    registered = _registered(app)
    assert ("/{username}/messages", "get") in registered  # the comparison sees the real routes
    assert registered - _documented() == set(), "routes missing from provider/api_spec/openapi.json"
    assert _documented() - registered == set(), "documented operations the app does not serve"


def test_the_documents_enums_and_fields_are_the_codes() -> None:
    schemas = DOC["components"]["schemas"]
    assert schemas["RecipientState"]["enum"] == list(RECIPIENT_STATES)
    assert schemas["Format"]["enum"] == list(FORMATS)
    assert set(schemas["MessageStatus"]["properties"]["priority"]["enum"]) == set(PRIORITIES)
    assert set(schemas["Message"]["properties"]["priority"]["anyOf"][0]["enum"]) == set(PRIORITIES)
    sent_fields = set(schemas["Message"]["properties"]) | set(schemas["RawMessage"]["properties"])
    assert sent_fields == FIELDS | IGNORED_FIELDS
    assert set(schemas["NewSendingDomain"]["properties"]) == set(sending_domains_api.FIELDS)
    assert set(schemas["NewInboundDomain"]["properties"]) == set(inbound_domains_api.FIELDS)
    assert set(schemas["DnsRecordPurpose"]["enum"]) == {
        sending_domains.DKIM, sending_domains.VERIFICATION, sending_domains.SPF, inbound_domains.MX}
    assert set(schemas["DnsRecordCheck"]["properties"]["status"]["enum"]) == {
        sending_domains.OK, sending_domains.MISSING, sending_domains.WRONG, sending_domains.LOOKUP_FAILED}
    assert set(schemas["DeliveryEvent"]["properties"]["kind"]["enum"]) == set(KINDS.values())


def test_the_document_is_served_without_authentication(client: FlaskClient) -> None:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == DOC


# --- Real answers against the document's schemas ------------------------------------------------


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(quote(part.replace("~", "~0").replace("/", "~1"), safe="") for part in parts)


def _resolve(node: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A response object and its place in the document, following one $ref."""
    ref = node["$ref"]
    parts = ref.removeprefix("#/").split("/")
    target: dict[str, Any] = DOC
    for part in parts:
        target = target[part]
    return target, parts


def _validate(body: Any, *parts: str) -> None:
    """`body` validates against the schema at `parts` of the document (its $refs followed)."""
    schema = {"$ref": DOC_URI + _pointer(*parts)}
    checker = Draft202012Validator.FORMAT_CHECKER
    Draft202012Validator(schema, registry=REGISTRY, format_checker=checker).validate(body)


def check(response: Any, path: str, method: str) -> Any:
    """The response's status is documented for the operation and its body validates (a documented
    answer without content must come without a body)."""
    operation = DOC["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method.upper()} {path} answered undocumented {status}"
    node = operation["responses"][status]
    parts = ["paths", path, method, "responses", status]
    if "$ref" in node:
        node, parts = _resolve(node)
    if "content" not in node:
        assert response.get_data() == b""
        return None
    assert response.mimetype == "application/json"
    assert "application/json" in node["content"]
    body = response.get_json()
    _validate(body, *parts, "content", "application/json", "schema")
    for header in node.get("headers", {}):
        if header in ("WWW-Authenticate", "Retry-After"):
            assert header in response.headers
    return body


def test_uuids_and_times_are_really_checked() -> None:
    assert {"date-time", "uuid"} <= set(Draft202012Validator.FORMAT_CHECKER.checkers)


def _example(name: str) -> dict[str, Any]:
    body = DOC["paths"]["/{username}/messages"]["post"]["requestBody"]["content"]["application/json"]
    example: dict[str, Any] = body["examples"][name]["value"]
    return example


@pytest.fixture
def account(db_session: Session, settings: Settings) -> Account:
    return new_account(db_session, settings)


Call = Callable[..., Any]


def _caller(client: FlaskClient, account: Account) -> Call:
    def calling(method: str, path: str, query: str = "", key: str | None = None, **kwargs: Any) -> Any:
        url = PREFIX + path.replace("{username}", account.username) + query
        headers = {"Authorization": f"Bearer {key or account.key}"}
        return client.open(url, method=method.upper(), headers=headers, **kwargs)
    return calling


@pytest.fixture
def call(client: FlaskClient, account: Account) -> Call:
    return _caller(client, account)


def test_sending_and_reading_messages_answer_as_documented(call: Call) -> None:
    messages, one = "/{username}/messages", "/{username}/messages/{message_id}"
    sent = [
        check(call("post", messages, json=_example(kind)), messages, "post") for kind in ("message", "raw")
    ]
    assert all(uuid.UUID(body["id"]).version == 4 for body in sent)
    page = check(call("get", messages, "?limit=1"), messages, "get")
    assert page["messages"] and "next_cursor" in page
    last = check(call("get", messages, f"?cursor={page['next_cursor']}"), messages, "get")
    assert {page["messages"][0]["id"], last["messages"][0]["id"]} == {body["id"] for body in sent}
    for body in sent:
        shown = check(call("get", one.replace("{message_id}", body["id"])), one, "get")
        assert shown["recipients"][0]["events"]
    check(call("get", one.replace("{message_id}", str(uuid.uuid4()))), one, "get")


@pytest.mark.parametrize(
    ("method", "path", "query", "kwargs"),
    [
        ("post", "/{username}/messages", "", {"json": {"from": "a@shop.example", "to": "b@example.com"}}),
        ("post", "/{username}/messages", "", {"data": b"{", "content_type": "application/json"}),
        ("get", "/{username}/messages", "?state=lost", {}),
        ("get", "/{username}/incoming_statuses", "?limit=0", {}),
        ("patch", "/{username}/addresses/{address_id}", "", {"json": {"format": "xml"}}),
    ],
)
def test_refusals_answer_the_documented_error_shape(
    call: Call, db_session: Session, account: Account, method: str, path: str, query: str, kwargs: Any
) -> None:
    address_id = _address_id(call)
    response = call(method, path.replace("{address_id}", str(address_id)), query, **kwargs)
    assert response.status_code == 422
    check(response, path, method)


@pytest.mark.parametrize(("method", "path"), sorted(
    (method, path) for path, method in _documented() if path.startswith("/{username}/")
))
def test_a_wrong_key_is_the_documented_401_on_every_operation(call: Call, method: str, path: str) -> None:
    concrete = path.replace("{message_id}", str(uuid.uuid4())).replace("{address_id}", "1")
    concrete = concrete.replace("{name}", "shop.example").replace("{address}", "gone@remote.example")
    assert "{" not in concrete.removeprefix("/{username}")
    response = call(method, concrete, key="0" * 32, json={})
    assert response.status_code == 401
    assert check(response, path, method) == {"status": 401, "error": "Unauthorized"}


def _address_id(call: Call) -> int:
    addresses = check(call("get", "/{username}/addresses"), "/{username}/addresses", "get")
    identifier: int = addresses["addresses"][0]["id"]
    return identifier


def test_addresses_answer_as_documented(call: Call) -> None:
    address_id = _address_id(call)
    path = "/{username}/addresses/{address_id}"
    concrete = path.replace("{address_id}", str(address_id))
    check(call("get", concrete), path, "get")
    change = DOC["components"]["schemas"]["AddressChange"]["example"]
    changed = check(call("patch", concrete, json=change), path, "patch")
    assert changed["format"] == change["format"]
    check(call("get", path.replace("{address_id}", str(address_id + 1000))), path, "get")


def test_the_inbound_history_answers_as_documented(call: Call, db_session: Session, account: Account) -> None:
    for minute in range(2):
        record_delivery(db_session, Delivery(
            resource_id=account.resource_id, address_id=None, envelope_from="a@sender.example",
            envelope_to="box@cloudmailin.test", status="404", http_status=404, smtp_reply="550 5.0.0 no",
            recipients=["box@cloudmailin.test"], subject="hello", size=10, spf_result="pass",
            remote_ip="192.0.2.1", target_url="https://u:p@app.example/in", response_body="no",
            target_ms=5, received_at=datetime(2026, 3, 10, 12, minute, tzinfo=UTC),
        ))
    db_session.commit()
    path = "/{username}/incoming_statuses"
    page = check(call("get", path, "?limit=1"), path, "get")
    assert len(page["incoming_statuses"]) == 1 and "next" in page
    check(call("get", path, f"?cursor={page['next_cursor']}"), path, "get")


def test_inbound_domains_answer_as_documented(db_session: Session, settings: Settings) -> None:
    domains, one = "/{username}/inbound_domains", "/{username}/inbound_domains/{name}"
    with DnsServer({}) as dns_server:
        app = create_app(dataclasses.replace(settings, dns_nameservers=dns_server.nameservers))
        call = _caller(app.test_client(), new_account(db_session, settings, domain=None))
        added = check(call("post", domains, json=DOC["components"]["schemas"]["NewInboundDomain"]["example"]),
                      domains, "post")
        assert {record["purpose"] for record in added["dns_records"]} >= {"mx", "verification"}
        check(call("post", domains, json={"name": "second.example"}), domains, "post")  # the plan's limit
        check(call("post", domains, json={"name": "localhost"}), domains, "post")
        assert check(call("get", domains), domains, "get")["inbound_domains"] == [added]
        named = one.replace("{name}", added["name"])
        assert check(call("get", named), one, "get") == added
        pending = check(call("post", named + "/verify"), one + "/verify", "post")
        assert not pending["verified"]
        assert call("delete", named).status_code == 204
        check(call("delete", named), one, "delete")  # now 404


def test_sending_domains_answer_as_documented(db_session: Session, settings: Settings) -> None:
    domains, one = "/{username}/sending_domains", "/{username}/sending_domains/{name}"
    verify = one + "/verify"
    with DnsServer({}) as dns_server:
        app = create_app(dataclasses.replace(settings, dns_nameservers=dns_server.nameservers))
        call = _caller(app.test_client(), new_account(db_session, settings, domain=None))
        added = check(call("post", domains, json=DOC["components"]["schemas"]["NewSendingDomain"]["example"]),
                      domains, "post")
        assert call("post", domains, json={"name": added["name"]}).status_code == 409
        check(call("post", domains, json={"name": added["name"]}), domains, "post")
        check(call("post", domains, json={"name": "localhost"}), domains, "post")
        listed = check(call("get", domains), domains, "get")
        assert [domain["name"] for domain in listed["sending_domains"]] == [added["name"]]
        named = one.replace("{name}", added["name"].upper())
        assert check(call("get", named), one, "get") == added
        pending = check(call("post", named + "/verify"), verify, "post")
        assert {c["status"] for c in pending["checks"]} == {"missing"} and not pending["verified"]
        zone: dict[str, dict[str, list[str]]] = {}
        for record in added["dns_records"]:
            zone.setdefault(record["name"], {}).setdefault("TXT", []).append(record["value"])
        dns_server.set_records(zone)
        verified = check(call("post", named + "/verify"), verify, "post")
        assert verified["verified"] and verified["verified_at"]
        missing = one.replace("{name}", "other.example")
        assert call("get", missing).status_code == 404
        check(call("get", missing), one, "get")
        check(call("post", missing + "/verify"), verify, "post")
        assert call("delete", named).status_code == 204
        check(call("delete", named), one, "delete")  # now 404


def test_suppressions_answer_as_documented(call: Call, db_session: Session, account: Account) -> None:
    message_id = sent_message(db_session, account, ["gone@remote.example", "lost@remote.example"])
    report = DeliveryReport("mx.remote.example", tuple(
        RecipientStatus(address, None, "failed", "5.1.1", "550 5.1.1 no such user", "smtp", None)
        for address in ("gone@remote.example", "lost@remote.example")
    ))
    record_report(db_session, message_id, report)
    db_session.commit()
    listed, one = "/{username}/suppressions", "/{username}/suppressions/{address}"
    page = check(call("get", listed, "?limit=1"), listed, "get")
    assert len(page["suppressions"]) == 1 and "next" in page
    rest = check(call("get", listed, f"?cursor={page['next_cursor']}"), listed, "get")
    addresses = {entry["address"] for entry in page["suppressions"] + rest["suppressions"]}
    assert addresses == {"gone@remote.example", "lost@remote.example"}
    assert call("get", listed, "?limit=0").status_code == 422
    check(call("get", listed, "?limit=0"), listed, "get")
    removed = call("delete", one.replace("{address}", "Gone@Remote.example"))
    assert removed.status_code == 204
    check(removed, one, "delete")
    again = call("delete", one.replace("{address}", "gone@remote.example"))
    assert again.status_code == 404
    check(again, one, "delete")


def test_the_events_webhook_answers_and_posts_as_documented(
    call: Call, db_session: Session, account: Account
) -> None:
    path = "/{username}/events_webhook"
    assert check(call("get", path), path, "get") == {"url": None}
    change = DOC["components"]["schemas"]["EventsWebhookChange"]["example"]
    set_to = check(call("put", path, json=change), path, "put")
    assert set_to == {"url": "https://user:•••@myapp.example/events"}
    assert check(call("get", path), path, "get") == set_to
    for refused in ({"url": "ftp://myapp.example/events"}, {"url": change["url"], "secret": "x"}):
        response = call("put", path, json=refused)
        assert response.status_code == 422
        check(response, path, "put")
    message_id = sent_message(db_session, account, ["ok@remote.example", "gone@remote.example"])
    gone = RecipientStatus("gone@remote.example", None, "failed", "5.1.1", "550 5.1.1 no", "smtp", None)
    record_report(db_session, message_id, DeliveryReport("mx.remote.example", (gone,)))
    db_session.commit()
    batch = pending_batch(db_session, account.resource_id)
    db_session.rollback()
    assert batch is not None
    assert {event["kind"] for event in batch.body["events"]} == {"delivery", "bounce"}
    _validate(batch.body, "webhooks", "deliveryEvents", "post", "requestBody", "content", "application/json",
              "schema")
    removed = call("delete", path)
    assert removed.status_code == 204
    check(removed, path, "delete")
    assert check(call("get", path), path, "get") == {"url": None}

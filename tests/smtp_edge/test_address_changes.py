"""Settings changed through the addresses API reach the running edge at commit: the next message
goes out in the new format, with sizes as strings, to the new target, and the edge is never
restarted (its cached route is dropped by the NOTIFY of migration 0002)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from provider.models import Resource
from provider.services.credentials import IssuedCredential, issue_credential
from provider.settings import Settings

from .conftest import EdgeThread, Mailbox, Target, send

ATTACHED = (
    b"Subject: With a file\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
    b"--b\r\nContent-Type: text/plain; name=file.txt\r\n"
    b"Content-Disposition: attachment; filename=file.txt\r\n"
    b"\r\ntestfile\r\n--b--\r\n"
)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Api:
    """The addresses API of one mailbox's resource, with its SMTP URL's user and key."""

    def __init__(self, client: FlaskClient, edge: EdgeThread, box: Mailbox, credential: IssuedCredential):
        self.client = client
        self.edge = edge
        self.box = box
        self.credential = credential

    def cached(self) -> bool:
        context = self.edge.server.context
        return context is not None and self.box.local_id in context.routes._entries

    def patch(self, **fields: Any) -> None:
        """PATCH the address and wait until the edge has heard of the change (a notice is
        asynchronous: it may arrive a moment after the API's answer)."""
        routes = self.edge.server.context.routes if self.edge.server.context else None
        assert routes is not None
        before = routes.generation
        response = self.client.patch(
            f"/api/v0.1/{self.credential.username}/addresses/{self.box.address_id}",
            json=fields,
            headers={"Authorization": f"Bearer {self.credential.key}"},
        )
        assert response.status_code == 200, response.get_json()
        _wait_for(lambda: routes.generation > before, "the route change notice")


def _api(
    client: FlaskClient, edge: EdgeThread, box: Mailbox, db_session: Session, settings: Settings
) -> Api:
    routes = edge.server.context.routes if edge.server.context else None
    assert routes is not None
    _wait_for(lambda: routes.listening, "the route cache to listen")
    resource = db_session.get(Resource, box.resource_id)
    assert resource is not None
    credential = issue_credential(db_session, settings, resource)
    db_session.commit()
    return Api(client, edge, box, credential)


def test_after_a_patch_to_multipart_the_next_message_arrives_as_form_data_at_the_new_target(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    client: FlaskClient,
    db_session: Session,
    settings: Settings,
) -> None:
    box = mailbox("/status/201")
    api = _api(client, edge, box, db_session, settings)
    send(edge, [box.address], ATTACHED)
    assert api.cached()  # so only the change notice can make the edge read the new settings

    api.patch(format="multipart", target=target.url("/status/202"))
    send(edge, [box.address], ATTACHED)

    first, second = target.requests
    assert (first.path, first.header("content-type")) == ("/status/201", "application/json")
    assert second.path == "/status/202"
    assert (second.header("content-type") or "").startswith("multipart/form-data; boundary=")
    fields = second.form()
    assert fields["headers[subject]"] == b"With a file"
    assert fields["envelope[to]"] == box.address.encode()
    assert fields["attachments[]"] == b"testfile"


def test_sizes_as_strings_and_the_raw_formats_reach_the_running_edge(
    edge: EdgeThread,
    target: Target,
    mailbox: Callable[..., Mailbox],
    client: FlaskClient,
    db_session: Session,
    settings: Settings,
) -> None:
    box = mailbox("/status/201")
    api = _api(client, edge, box, db_session, settings)
    send(edge, [box.address], ATTACHED)
    assert api.cached()
    api.patch(size_as_string=True)
    send(edge, [box.address], ATTACHED)
    api.patch(format="raw")
    send(edge, [box.address], ATTACHED)
    api.patch(format="raw_json")
    send(edge, [box.address], ATTACHED)

    numeric, as_string, raw, raw_json = target.requests
    assert json.loads(numeric.body)["attachments"][0]["size"] == 8
    assert json.loads(as_string.body)["attachments"][0]["size"] == "8"
    assert raw.form()["message"].endswith(b"\r\ntestfile\r\n--b--\r\n")
    assert json.loads(raw_json.body)["message"].endswith("\r\ntestfile\r\n--b--\r\n")

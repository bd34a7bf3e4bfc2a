"""In a real browser: a message the store kept, shown on its page, sent again with the button, and
the archive downloaded through the page's link and read back (stored messages named in it)."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from dev.services import S3Server
from provider.jobs import RESEND_JOB
from provider.models import Address
from provider.services.stores import StoreConfig, write_config
from provider.settings import Settings
from provider.tasks import DEFAULT_QUEUE, redis_connection
from tests.conftest import STORE_BUCKET
from tests.heroku_standin import RunningStandin
from tests.job_settings import settings_in_use

from ..smtp_edge.conftest import EdgeThread, Target
from ..smtp_edge.test_stores import read_back
from .browsing import (
    provisioned,
    send_through_the_edge,
    serious_violations,
    shoot,
    sign_in_through_heroku,
    wait_for_history,
)

pytestmark = pytest.mark.e2e


def run_queued_jobs(settings: Settings) -> None:
    """What the worker process does with the queued re-sends, in a thread of its own: Playwright's
    sync API keeps an event loop running in this one and the job runs its own (`asyncio.run`);
    RQ's SimpleWorker wants the main thread for its signal handlers, so the job is called as RQ would."""
    from workers.jobs.resend import resend_message

    jobs = Queue(DEFAULT_QUEUE, connection=redis_connection(settings.redis_url)).jobs
    assert [job.func_name for job in jobs] == [RESEND_JOB]

    def run() -> None:
        with settings_in_use(settings):
            for job in jobs:
                resend_message(*job.args)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)


def test_a_user_sends_a_kept_message_again_and_downloads_the_archive_that_names_it(
    browser: Browser, heroku: RunningStandin, site: str, db_session: Session, settings: Settings,
    edge: EdgeThread, target: Target, s3_server: S3Server, tmp_path: Path,
) -> None:
    addon_id, _, to = provisioned(heroku, db_session, settings, target.url("/status/201"))
    address = db_session.scalars(select(Address).where(Address.resource_id == addon_id)).one()
    write_config(settings, address, StoreConfig(
        STORE_BUCKET, f"t-{uuid.uuid4().hex[:12]}", "us-east-1", s3_server.endpoint_url,
        s3_server.access_key_id, s3_server.secret_access_key, attachments=True, messages=True,
    ))
    db_session.commit()
    send_through_the_edge(edge, to, "Order 2002 received")
    wait_for_history(db_session, addon_id, "Order 2002 received")

    signed = sign_in_through_heroku(browser, heroku, site, addon_id)
    page = signed.page
    page.get_by_role("link", name="Inbound", exact=True).click()
    page.get_by_role("row").filter(has_text="Order 2002 received").get_by_role("link").click()
    expect(page.locator("#stored-message")).to_contain_text("Subject: Order 2002 received")
    with page.expect_download() as kept:
        page.locator("#download-message").click()
    assert b"Subject: Order 2002 received" in Path(kept.value.path()).read_bytes()

    page.get_by_role("button", name="Send again to the target").click()
    expect(page.locator(".notice")).to_contain_text("Re-send queued")
    expect(page.locator("#resends")).to_contain_text("queued")
    shoot(page, "inbound-message-resend")
    assert serious_violations(page) == []
    run_queued_jobs(settings)
    page.reload()
    expect(page.locator("#resends")).to_contain_text("accepted")
    assert len(target.requests) == 2

    with page.expect_download() as download:
        page.get_by_role("link", name="Archive").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert lines[-1] == {"type": "end", "inbound": 2, "outbound": 0}
    first, again = (line for line in lines if line["type"] == "inbound")
    assert again["resent_from_id"] == first["id"] and again["status"] == "201"
    assert b"Subject: Order 2002 received" in read_back(s3_server, first["stored_message"]["url"])
    assert signed.errors == []

"""An address's signing secret (`X-CloudMailin-Signature`, `provider.inbound.signature`): reading
it for its owner and replacing it.

The secret is stored encrypted (`addresses.signing_secret_enc`, re-encrypted by `flask secrets
rotate`) and shown only on request (the dashboard's "Reveal", a POST). Rotating replaces it at
once, with no overlap: the commit updates the address row, whose trigger (migration 0002)
NOTIFYs every SMTP edge to drop the cached route, so the next POST is signed with the new secret
and an app still checking the old one refuses it. The page says so before the button is pressed.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from ..crypto import box_for
from ..models import Address
from ..settings import Settings
from . import applog, applog_lines
from .address_settings import resource_address
from .addresses import new_signing_secret

log = logging.getLogger(__name__)


def signing_secret(settings: Settings, address: Address) -> str:
    return box_for(settings).decrypt(address.signing_secret_enc)


def rotate_signing_secret(session: Session, settings: Settings, resource_id: str, address_id: int) -> str:
    """Give the resource's address a new secret and commit; `UnknownAddress` if it has none such.
    Returns the new secret (for the caller to show once, never to log)."""
    address = resource_address(session, resource_id, address_id, lock=True)
    secret = new_signing_secret()
    address.signing_secret_enc = box_for(settings).encrypt(secret)
    applog.record(session, settings, resource_id, applog_lines.signing_secret_rotated(address.local_id))
    log.info("signing secret rotated resource=%s address=%s", resource_id, address.id)
    session.commit()
    return secret

"""The edge signs with an address secret stored under a rotated-out key, and after re-encryption
with the new key alone: the same secret throughout, so targets verifying signatures see no change."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from provider.crypto import SecretBox, new_encryption_key
from provider.inbound import verify_signature
from provider.services.reencrypt import reencrypt_all

from .conftest import EdgeThread, Mailbox, Target, message, send


def _signed_with(secret: str, target: Target) -> bool:
    post = target.requests[-1]
    signature = post.header("x-cloudmailin-signature")
    assert signature is not None
    signed_at = int(signature.split(",")[0].removeprefix("t="))
    return verify_signature(secret, signature, post.body, tolerance_s=0, now=signed_at)


def test_posts_stay_signed_with_the_same_secret_through_a_key_rotation(
    edge: EdgeThread, target: Target, mailbox: Callable[..., Mailbox], db_session: Session
) -> None:
    box = mailbox("/status/200")
    old_key, new_key = edge.settings.encryption_key, new_encryption_key()

    edge.restart(encryption_key=new_key, encryption_keys_old=(old_key,))
    assert send(edge, [box.address], message()) == {}
    assert _signed_with(box.signing_secret, target)

    reports = reencrypt_all(db_session, SecretBox(new_key, (old_key,)))
    assert sum(r.reencrypted for r in reports if r.column == "signing_secret_enc") == 1
    edge.restart(encryption_key=new_key, encryption_keys_old=())
    assert send(edge, [box.address], message()) == {}
    assert len(target.requests) == 2 and _signed_with(box.signing_secret, target)

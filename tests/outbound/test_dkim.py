"""DKIM signatures of outbound mail verify with dkimpy against the published key."""

from __future__ import annotations

import dkim

from provider.outbound.compose import compose
from provider.outbound.dkim import dns_record, new_key_pair, public_key_of, record_name, signature
from provider.outbound.request import read_request


def _message() -> bytes:
    body = {"from": "orders@shop.example", "to": "ann@example.com", "subject": "Hi", "plain": "Hello\n"}
    return compose(read_request(body), "5b2f6c9e-1f0a-4a53-9c1e-0d8d1c2a7f10")


def _verify(message: bytes, published: str) -> bool:
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return published.encode() if name.decode().rstrip(".") == record_name("shop.example") else b""

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


def test_a_signed_message_verifies_against_its_published_key() -> None:
    private, public = new_key_pair()
    raw = _message()
    signed = signature(raw, "shop.example", "cloudmailin", private) + raw
    assert signed.startswith(b"DKIM-Signature: ") and public_key_of(private) == public
    assert _verify(signed, dns_record(public))


def test_an_altered_body_or_another_key_fails() -> None:
    private, public = new_key_pair()
    raw = _message()
    signed = signature(raw, "shop.example", "cloudmailin", private) + raw
    assert not _verify(signed.replace(b"Hello", b"Hullo"), dns_record(public))
    _, other = new_key_pair()
    assert not _verify(signed, dns_record(other))


def test_a_header_added_after_signing_breaks_the_signature() -> None:
    private, public = new_key_pair()
    raw = _message()
    signed = signature(raw, "shop.example", "cloudmailin", private) + raw
    forged = signed.replace(b"Subject: Hi\r\n", b"Subject: Hi\r\nSubject: Win a prize\r\n")
    assert not _verify(forged, dns_record(public))


def test_the_openssl_rsa_step_gives_dkimpys_own_signature_byte_for_byte() -> None:
    import hashlib

    from dkim.crypto import RSASSA_PKCS1_v1_5_sign, parse_pem_private_key

    from provider.outbound.dkim import rsa_sign

    private, _ = new_key_pair()
    pk = parse_pem_private_key(private.encode())
    for algorithm in ("sha256", "sha1"):
        digest = hashlib.new(algorithm, _message())
        assert rsa_sign(digest, pk) == RSASSA_PKCS1_v1_5_sign(digest, pk)

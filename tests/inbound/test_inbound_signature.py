"""`X-CloudMailin-Signature`: what targets verify."""

from __future__ import annotations

import hashlib
import hmac

from provider.inbound import sign, verify_signature

SECRET = b"per-address-secret"
BODY = b'{"envelope":{}}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_valid_signature_verifies_within_tolerance() -> None:
    header = sign(SECRET, BODY, 1700000000)
    assert verify_signature(SECRET, header, BODY, tolerance_s=300, now=1700000299)
    assert verify_signature(SECRET.decode(), header, BODY, tolerance_s=300, now=1699999800)


def test_tampered_body_wrong_secret_or_stale_time_fail() -> None:
    header = sign(SECRET, BODY, 1700000000)
    assert not verify_signature(SECRET, header, BODY + b" ", tolerance_s=300, now=1700000000)
    assert not verify_signature(b"other", header, BODY, tolerance_s=300, now=1700000000)
    assert not verify_signature(SECRET, header, BODY, tolerance_s=300, now=1700000301)


def test_any_of_several_v1_values_may_match_during_rotation() -> None:
    good = sign(SECRET, BODY, 1700000000).split("v1=")[1]
    header = f"t=1700000000,v1={'0' * 64},v1={good}"
    assert verify_signature(SECRET, header, BODY, tolerance_s=60, now=1700000000)


def test_malformed_headers_are_rejected_without_error() -> None:
    for header in ("", "garbage", "t=abc,v1=00", "v1=00", "t=1700000000", "t=-5,v1=00", "t=1,v1"):
        assert not verify_signature(SECRET, header, BODY, tolerance_s=10**12, now=1700000000)

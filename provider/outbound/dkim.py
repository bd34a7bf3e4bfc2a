"""DKIM for sending domains (RFC 6376): the key pair a domain publishes, and the signature each
message gets at delivery.

Signing uses dkimpy with relaxed/relaxed canonicalisation (what receivers verify most reliably
after intermediate MTAs re-fold headers) and RSA-SHA256 with 2048-bit keys (RFC 8301's floor is
1024; 2048 still fits one TXT record in 255-byte strings). The signature covers the headers that
identify and describe a message, each also "over-signed" once so a header added later breaks it.
"""

from __future__ import annotations

import base64
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

KEY_BITS = 2048
DEFAULT_SELECTOR = "cloudmailin"
SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"in-reply-to", b"references",
)


def new_key_pair() -> tuple[str, str]:
    """A new private key (PEM, for the encrypted column) and its public half (base64 DER, the
    `p=` of the DNS record)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def public_key_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()


def dns_record(public_b64: str) -> str:
    """The TXT value to publish at `<selector>._domainkey.<domain>`."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def record_name(domain: str, selector: str = DEFAULT_SELECTOR) -> str:
    return f"{selector}._domainkey.{domain}"


def signature(raw: bytes, domain: str, selector: str, private_pem: str) -> bytes:
    """The `DKIM-Signature:` field (CRLF-terminated) to put in front of `raw`."""
    present = {line.split(b":", 1)[0].strip().lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
               if line[:1] not in (b" ", b"\t") and b":" in line}
    headers = [name for name in SIGNED_HEADERS if name in present]
    return dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        private_pem.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=headers + [name for name in (b"from", b"subject", b"to") if name in present],
        linesep=b"\r\n",
    )


# dkimpy computes the RSA step in pure Python (two 1024-bit modular exponentiations): 5.6 ms of
# CPU per message on this machine, most of a delivery worker's cost. The same step through
# OpenSSL (`cryptography`) takes 0.2 ms and gives the same bytes (RSASSA-PKCS1-v1_5 is
# deterministic; tests/outbound/test_dkim.py compares them). dkimpy keeps doing everything
# else: canonicalisation, hashing, the header's tags and folding.
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_KEYS: dict[int, rsa.RSAPrivateKey] = {}
"""OpenSSL keys by modulus: building one checks the key, which costs more than a signature."""


def _openssl_key(pk: dict[str, int]) -> rsa.RSAPrivateKey:
    key = _KEYS.get(pk["modulus"])
    if key is None:
        if len(_KEYS) >= 256:
            _KEYS.clear()
        public = rsa.RSAPublicNumbers(pk["publicExponent"], pk["modulus"])
        key = _KEYS[pk["modulus"]] = rsa.RSAPrivateNumbers(
            p=pk["prime1"], q=pk["prime2"], d=pk["privateExponent"], dmp1=pk["exponent1"],
            dmq1=pk["exponent2"], iqmp=pk["coefficient"], public_numbers=public,
        ).private_key()
    return key


def rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's `RSASSA_PKCS1_v1_5_sign(hash, private_key)`, through OpenSSL."""
    algorithm = _HASHES[digest.name.lower()]()
    return _openssl_key(private_key).sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


dkim.RSASSA_PKCS1_v1_5_sign = rsa_sign  # what dkimpy's signer calls for rsa-sha256 and rsa-sha1

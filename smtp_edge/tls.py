"""The STARTTLS certificate: the operator's (SMTP_TLS_CERT/SMTP_TLS_KEY) or a self-signed one.

Senders on the public internet use opportunistic TLS and do not verify an MX certificate
(RFC 7435), so a self-signed certificate still buys encryption in development and tests. It is
generated once into SMTP_DATA_DIR and reused, so restarts do not change the fingerprint.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provider.settings import Settings

log = logging.getLogger(__name__)

SELF_SIGNED_CERT = "smtp-self-signed-cert.pem"
SELF_SIGNED_KEY = "smtp-self-signed-key.pem"
VALID_DAYS = 825


def self_signed_paths(settings: Settings) -> tuple[Path, Path]:
    folder = Path(settings.smtp_data_dir)
    return folder / SELF_SIGNED_CERT, folder / SELF_SIGNED_KEY


def ensure_self_signed(settings: Settings) -> tuple[Path, Path]:
    """Create the self-signed pair for `smtp_hostname` unless it exists; return its paths."""
    cert_path, key_path = self_signed_paths(settings)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.smtp_hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(settings.smtp_hostname),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key is written owner-only and before the certificate, so a half-written pair is
    # never mistaken for a complete one.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info(
        "generated a self-signed STARTTLS certificate for %s in %s",
        settings.smtp_hostname,
        cert_path,
    )
    return cert_path, key_path


def server_tls_context(settings: Settings) -> ssl.SSLContext:
    if settings.smtp_tls_cert and settings.smtp_tls_key:
        cert_path, key_path = Path(settings.smtp_tls_cert), Path(settings.smtp_tls_key)
    else:
        cert_path, key_path = ensure_self_signed(settings)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context

"""What the SMTP edge knows about a transaction, and its `envelope` payload shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPF_RESULTS = frozenset({"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"})


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str

    def __post_init__(self) -> None:
        # Fail loudly in the edge rather than send users a value their code does not expect.
        if self.result not in SPF_RESULTS:
            raise ValueError(f"unknown SPF result {self.result!r}")


@dataclass(frozen=True)
class Envelope:
    to: str
    recipients: list[str]
    mail_from: str  # "" for the null sender <>
    helo_domain: str
    remote_ip: str
    spf: SpfResult
    tls: bool
    tls_cipher: str | None = None  # the TLS protocol ("TLSv1.3"), as CloudMailin fills it
    store_url: str | None = None


def envelope_fields(envelope: Envelope, md5: str) -> dict[str, Any]:
    """The `envelope` object in spec order; optional keys only when they apply."""
    fields: dict[str, Any] = {
        "to": envelope.to,
        "recipients": list(envelope.recipients),
        "from": envelope.mail_from,
        "helo_domain": envelope.helo_domain,
        "remote_ip": envelope.remote_ip,
        "spf": {"result": envelope.spf.result, "domain": envelope.spf.domain},
        "tls": envelope.tls,
    }
    if envelope.tls and envelope.tls_cipher:
        fields["tls_cipher"] = envelope.tls_cipher
    fields["md5"] = md5
    if envelope.store_url:
        fields["store_url"] = envelope.store_url
    return fields

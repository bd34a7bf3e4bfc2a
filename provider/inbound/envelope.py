"""What the SMTP edge knows about a transaction, and its `envelope` payload shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPF_RESULTS = frozenset({"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"})
DKIM_RESULTS = frozenset({"pass", "fail", "neutral", "temperror", "permerror"})
"""One signature's result, as RFC 8601 section 2.7.1 names them (an unsigned message has no entry)."""
DMARC_RESULTS = frozenset({"none", "pass", "fail", "temperror", "permerror"})
"""RFC 8601 section 2.7.1 / RFC 7489 section 11.2."""
DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})
ARC_RESULTS = frozenset({"none", "pass", "fail"})
"""RFC 8617 section 4.4 / RFC 8601's `arc` method."""


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str

    def __post_init__(self) -> None:
        # Fail loudly in the edge rather than send users a value their code does not expect.
        if self.result not in SPF_RESULTS:
            raise ValueError(f"unknown SPF result {self.result!r}")


@dataclass(frozen=True)
class DkimResult:
    """One DKIM-Signature of the message: its d= and s= tags and what verifying it gave."""

    domain: str
    selector: str
    result: str

    def __post_init__(self) -> None:
        if self.result not in DKIM_RESULTS:
            raise ValueError(f"unknown DKIM result {self.result!r}")


@dataclass(frozen=True)
class DmarcResult:
    """The From domain's DMARC verdict; `policy` is the published p= (or sp=) when a record was
    found, None without one."""

    result: str
    domain: str | None
    policy: str | None = None

    def __post_init__(self) -> None:
        if self.result not in DMARC_RESULTS:
            raise ValueError(f"unknown DMARC result {self.result!r}")
        if self.policy is not None and self.policy not in DMARC_POLICIES:
            raise ValueError(f"unknown DMARC policy {self.policy!r}")


@dataclass(frozen=True)
class ArcResult:
    """The message's ARC chain: its result and how many instances (hops) it has."""

    result: str
    instances: int

    def __post_init__(self) -> None:
        if self.result not in ARC_RESULTS:
            raise ValueError(f"unknown ARC result {self.result!r}")


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
    dkim: tuple[DkimResult, ...] | None = None  # None: not checked (no key in the payload)
    dmarc: DmarcResult | None = None
    arc: ArcResult | None = None


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
    if envelope.dkim is not None:
        fields["dkim"] = [
            {"domain": d.domain, "selector": d.selector, "result": d.result} for d in envelope.dkim
        ]
    if envelope.dmarc is not None:
        dmarc: dict[str, Any] = {"result": envelope.dmarc.result}
        if envelope.dmarc.domain is not None:
            dmarc["domain"] = envelope.dmarc.domain
        if envelope.dmarc.policy is not None:
            dmarc["policy"] = envelope.dmarc.policy
        fields["dmarc"] = dmarc
    if envelope.arc is not None:
        fields["arc"] = {"result": envelope.arc.result, "instances": envelope.arc.instances}
    return fields

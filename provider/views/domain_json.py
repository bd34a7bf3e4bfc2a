"""The JSON shapes the sending and inbound domains APIs share: DNS records, checks, times."""

from __future__ import annotations

from typing import Any

from ..models import Domain
from ..services.domain_names import DnsRecord, RecordCheck
from ..services.paging import iso_time as time_json


def record_json(record: DnsRecord) -> dict[str, Any]:
    return {"type": record.type, "name": record.name, "value": record.value, "purpose": record.purpose,
            "required": record.required}


def check_json(check: RecordCheck) -> dict[str, Any]:
    return {**record_json(check.record), "status": check.status, "detail": check.detail}


def domain_json(domain: Domain, records: list[DnsRecord], **kind_fields: Any) -> dict[str, Any]:
    """A domain of either kind as its API shows it; `kind_fields` are what only that kind has."""
    return {
        "name": domain.name,
        **kind_fields,
        "state": "verified" if domain.verified_at else "pending",
        "verified": domain.verified_at is not None,
        "verified_at": time_json(domain.verified_at),
        "created_at": time_json(domain.created_at),
        "dns_records": [record_json(record) for record in records],
    }


__all__ = ["check_json", "domain_json", "record_json", "time_json"]

"""The JSON shapes the sending and inbound domains APIs share: DNS records, checks, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..services.domain_names import DnsRecord, RecordCheck


def record_json(record: DnsRecord) -> dict[str, Any]:
    return {"type": record.type, "name": record.name, "value": record.value, "purpose": record.purpose,
            "required": record.required}


def check_json(check: RecordCheck) -> dict[str, Any]:
    return {**record_json(check.record), "status": check.status, "detail": check.detail}


def time_json(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None

"""The limits every way of sending shares (spec/outbound.md): the API and SMTP submission refuse
the same messages for the same reasons.
"""

from __future__ import annotations

MAX_RECIPIENTS = 20
"""To and Cc together, or RCPT TO commands in one submission transaction."""

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
"""The composed message (API) or the DATA (SMTP), as it would leave the service."""

BLOCKED_EXTENSIONS = frozenset(
    {"vbs", "exe", "bin", "bat", "chm", "com", "hta", "pif", "reg", "vbe", "vba", "msc", "msi"}
)
"""Attachment file name extensions refused outright: executables receivers' filters drop anyway."""

PRIORITIES = ("priority", "standard", "digest")
"""The delivery classes, in the order their queues are served."""

DEFAULT_PRIORITY = "standard"

API_TAG = "api"
"""Added to every message sent through the JSON API, so the history tells the two paths apart."""

MAX_TAGS = 10
MAX_TAG_LENGTH = 64
MAX_HEADER_NAME = 76
"""RFC 5322 section 2.1.1 keeps lines under 78 characters; a field name must fit on its line."""

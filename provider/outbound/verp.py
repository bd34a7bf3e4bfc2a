"""The VERP bounce address: `bounces+<message uuid>@BOUNCE_DOMAIN`, the envelope sender of every
outbound message (`workers.delivery.engine.bounce_address` writes it). A bounce names the message
it is about by the address it comes back to, whatever the bouncing server puts in the report."""

from __future__ import annotations

import uuid

LOCAL_PREFIX = "bounces+"


def message_id_of(local_part: str) -> uuid.UUID | None:
    """The message a bounce address's local part names, None for any other local part.

    Servers may change the case of a local part (some upper-case it), so neither the prefix nor
    the uuid's hex digits are matched by case."""
    if not local_part.lower().startswith(LOCAL_PREFIX):
        return None
    rest = local_part[len(LOCAL_PREFIX):]
    if len(rest) != 36:  # the canonical spelling only: no braces, no urn: prefix
        return None
    try:
        return uuid.UUID(rest)
    except ValueError:
        return None

"""Refusing blocked attachment types in a whole message (SMTP submission).

The JSON API sees each attachment's file name in the request; a submitted message carries its
names in the MIME parts, so they are read with the inbound parser, which walks any structure in
bounded time and memory (caps on depth and part count) where the email package would recurse
and, for hostile nesting, fail with a RecursionError. A structure past the parser's caps (parts,
headers, multipart depth, where it would pass a subtree on unread) is refused as too complex,
so no attachment goes out unchecked.
"""

from __future__ import annotations

import mimetypes

from ..errors import UnprocessableMessage
from ..inbound import MessageTooComplex, parse_message
from ..inbound.parse import UNPARSED_NAME
from .errors import BlockedAttachment
from .limits import BLOCKED_EXTENSIONS


def _unnamed(file_name: str, content_type: str) -> bool:
    """The parser names a part without a file name `attachment<ext>` after its type; an
    `application/octet-stream` part so becomes `attachment.bin`, which the sender never chose."""
    return file_name == "attachment" + (mimetypes.guess_extension(content_type, strict=False) or ".bin")


def refuse_blocked_attachments(raw: bytes) -> None:
    """Raise BlockedAttachment for the first part whose file name has a blocked extension."""
    try:
        parsed = parse_message(raw)
    except MessageTooComplex:
        raise UnprocessableMessage() from None
    for attachment in parsed.attachments:
        name = attachment.file_name
        if name == UNPARSED_NAME and attachment.content_type == "message/rfc822":
            raise UnprocessableMessage()
        if "." not in name or _unnamed(name, attachment.content_type):
            continue
        extension = name.rpartition(".")[2].lower()
        if extension in BLOCKED_EXTENSIONS:
            raise BlockedAttachment(name, extension)

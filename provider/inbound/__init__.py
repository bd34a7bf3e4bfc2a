"""Inbound mail domain: raw RFC 5322 bytes -> the POST payloads of spec/inbound.md.

Framework free; the SMTP edge calls `parse_message` (off the event loop) and `render`.

Decisions, where the spec leaves room:

- Nested messages (`message/rfc822`, `message/global`) are attachments, as CloudMailin passes
  them: content is the embedded message as sent (transfer encoding removed), the file name its
  `filename`/`name` parameter or `message.eml`. Their text never leaks into `plain`/`html`.
- Body text: only `text/plain` and `text/html` parts without a file name and not marked
  `Content-Disposition: attachment` are body; every other leaf (including `text/calendar`,
  `text/csv`, delivery reports) is an attachment. Several body parts of one type are joined in
  order, a newline added between them when the first does not end with one. Body text has LF
  line ends; attachments keep their bytes.
- Attachments always have a file name: the parameter's last path component (control characters
  become `_`), else `attachment<ext>` from the type (`message.eml` for messages). An invalid
  `Content-Type` is guessed from the file name. `disposition` is the header's when it is
  `attachment`/`inline`, else `inline` for parts with a Content-ID and `attachment` otherwise.
  `content_id` always carries angle brackets.
- Charsets: see `charsets.py` (UTF-8 sniffing for ASCII/Latin-1 labels, Windows-1252 as the
  fallback, never an exception; NUL becomes U+FFFD). Encoded words in unknown charsets decode
  the same way.
- Caps (`ParseLimits`), chosen so no real message reaches them:
  * multipart nesting deeper than 32: the deeper subtree is passed on whole as one attachment
    `unparsed-part.eml` (`message/rfc822`); nothing is lost and no work is done inside it;
  * more than 1000 MIME parts, or more than 1000 header fields in one part:
    `MessageTooComplex` (the edge refuses with 554 5.6.0); truncating would deliver a message
    that looks complete but is not.
  Everything else is linear in the message size: no recursion (an explicit stack), delimiter
  and header scans are regex searches over the raw bytes, a boundary longer than 200
  characters is treated as absent.
- Broken structure: a missing close delimiter ends the last part at the end of its parent; a
  multipart whose boundary never occurs is read from a delimiter found on its first line (spam
  declares one boundary and uses another), else as text; a nested multipart that reuses its
  parent's boundary does not hide the parts after it; invalid base64 decodes as far as it can.
- `reply_plain`: see `reply.py` (null for mail that is not a reply; why neither email-reply-parser
  nor mail-parser-reply is used).
- `raw_json` (`{"message", "envelope"}`) carries the message as UTF-8 text with invalid bytes
  replaced; the multipart `raw` format is the byte-exact one.
"""

from .envelope import DkimResult, DmarcResult, Envelope, SpfResult, envelope_fields
from .formats import FORMATS, Payload, render
from .parse import (
    DEFAULT_LIMITS,
    Attachment,
    MessageTooComplex,
    ParsedMessage,
    ParseLimits,
    parse_message,
)
from .signature import sign, verify_signature

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "Attachment",
    "DkimResult",
    "DmarcResult",
    "Envelope",
    "MessageTooComplex",
    "ParseLimits",
    "ParsedMessage",
    "Payload",
    "SpfResult",
    "envelope_fields",
    "parse_message",
    "render",
    "sign",
    "verify_signature",
]

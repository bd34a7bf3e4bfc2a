"""A sending request (spec/outbound.md: Message or RawMessage), read and checked once.

`read_request` takes the decoded JSON object of `POST /messages` and returns an `OutboundRequest`
whose every field has its final type, or raises the `MessageRefused` that says what is wrong. The
checks that need the account (sending domains, quota) are not here: they belong to the service
that stores the message, so SMTP submission gets them too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr, getaddresses, parseaddr
from functools import cached_property, lru_cache
from typing import Any

from .errors import (
    BlockedAttachment,
    HeaderInjection,
    InvalidAddress,
    InvalidField,
    NoBody,
    TooManyRecipients,
)
from .limits import BLOCKED_EXTENSIONS, MAX_HEADER_NAME, MAX_RECIPIENTS, MAX_TAG_LENGTH, MAX_TAGS, PRIORITIES

FIELDS = frozenset(
    {
        "from", "to", "cc", "subject", "plain", "html", "markdown", "headers", "attachments",
        "tags", "priority", "test_mode", "raw",
    }
)
IGNORED_FIELDS = frozenset({"id"})
"""MessageCommon's read-only `id`: clients that echo a response back may send it."""

ADDR_SPEC = re.compile(r"[^@\s<>()\[\],;:\\\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
"""A practical addr-spec: a local part without specials or spaces, a dotted host name."""
HEADER_NAME = re.compile(r"[!-9;-~]+")
"""RFC 5322 section 3.6.8: printable US-ASCII except the colon."""
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "message-id", "mime-version", "content-type", "content-transfer-encoding"}
)
"""Set from the request's own fields; a `headers` entry may not contradict them."""


@dataclass(frozen=True)
class Attachment:
    file_name: str
    content: bytes
    content_type: str
    content_id: str | None = None

    @property
    def inline(self) -> bool:
        return self.content_id is not None


@dataclass(frozen=True)
class OutboundRequest:
    sender: str
    """The From as given, display name included."""
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    subject: str | None = None
    plain: str | None = None
    html: str | None = None
    markdown: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    tags: tuple[str, ...] = ()
    priority: str = "standard"
    test_mode: bool = False
    raw: bytes | None = None

    # Cached: parsing an address is one of the dearer steps of reading a request, and each of
    # these is asked for several times (the checks, composing, storing).
    @cached_property
    def sender_address(self) -> str:
        return bare_address(self.sender)

    @cached_property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2].lower()

    @cached_property
    def recipients(self) -> list[str]:
        """The envelope recipients: every To and Cc address once, in order."""
        seen: set[str] = set()
        result: list[str] = []
        for value in (*self.to, *self.cc):
            address = bare_address(value)
            if address.lower() not in seen:
                seen.add(address.lower())
                result.append(address)
        return result


_DOT_ATOM_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
"""A bare `dot-atom@host` (RFC 5322 section 3.4.1), the shape of nearly every address sent:
the email package's parser gives back exactly this text for it, at a fiftieth of the cost."""


def address_pairs(value: str) -> list[tuple[str, str]]:
    """`email.utils.getaddresses([value])`: (display name, address) of each address in `value`."""
    if _DOT_ATOM_ADDRESS.fullmatch(value):
        return [("", value)]
    if len(value) > _REMEMBERED_LENGTH:
        return getaddresses([value])
    return list(_parsed_pairs(value))


def bare_address(value: str) -> str:
    if _DOT_ATOM_ADDRESS.fullmatch(value):
        return value
    if len(value) > _REMEMBERED_LENGTH:
        return parseaddr(value)[1]
    return _parsed_address(value)


_REMEMBERED_LENGTH = 320
"""The other shapes ("Shop <orders@shop.example>") go through the email package, remembered: an
app sends from a handful of From values, each parsed twice per message otherwise. Only short
ones, so that what is remembered stays small whatever clients send."""


@lru_cache(maxsize=1024)
def _parsed_pairs(value: str) -> tuple[tuple[str, str], ...]:
    return tuple(getaddresses([value]))


@lru_cache(maxsize=1024)
def _parsed_address(value: str) -> str:
    return parseaddr(value)[1]


def _no_newlines(value: str, where: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(where)
    if "\x00" in value:
        raise InvalidField(f"{where} may not contain NUL characters")
    return value


def _string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(f"{name} must be a string")
    if "\x00" in value:
        raise InvalidField(f"{name} may not contain NUL characters")
    return value


def _string_list(body: Mapping[str, Any], name: str) -> list[str]:
    """A string (comma-separated) or a list of strings, as the spec allows for to, cc and tags."""
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise InvalidField(f"{name} must be a string or a list of strings")
    return items


def _addresses(body: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """Each address as written ("Name <a@b>" kept for the header), split on commas outside quotes."""
    result: list[str] = []
    for item in _string_list(body, name):
        _no_newlines(item, f"The {name} address")
        for display, address in address_pairs(item):
            if not address and not display:
                continue
            if not ADDR_SPEC.fullmatch(address):
                raise InvalidAddress(f"{name} has an invalid address: {item.strip()!r}")
            result.append(formataddr((display, address)))
    return tuple(result)


def _sender(body: Mapping[str, Any]) -> str:
    value = _string(body, "from")
    if not value or not value.strip():
        raise InvalidField("from is required")
    _no_newlines(value, "The from address")
    pairs = address_pairs(value)
    if len(pairs) != 1 or not ADDR_SPEC.fullmatch(pairs[0][1]):
        raise InvalidAddress(f"from must be one valid address, got {value.strip()!r}")
    display, address = pairs[0]
    return formataddr((display, address))


def _headers(body: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = body.get("headers")
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidField("headers must be an object of names to a string or a list of strings")
    result: list[tuple[str, str]] = []
    for name, given in value.items():
        _no_newlines(name, "A header name")
        if not HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME:
            raise InvalidField(f"{name!r} is not a valid header name")
        values = given if isinstance(given, list) else [given]
        for item in values:
            if not isinstance(item, str):
                raise InvalidField(f"header {name} must be a string or a list of strings")
            _no_newlines(item, f"The {name} header")
            if name.lower() == "subject":
                if body.get("subject") is None:  # the subject field overrides it (spec)
                    result.append(("Subject", item))
                continue
            if name.lower() in RESERVED_HEADERS:
                raise InvalidField(f"header {name} is set from the request's own fields, not from headers")
            result.append((name, item))
    return tuple(result)


def _attachment(index: int, value: Any) -> Attachment:
    if not isinstance(value, dict):
        raise InvalidField(f"attachments[{index}] must be an object")
    where = f"attachments[{index}]"
    file_name = value.get("file_name")
    content = value.get("content")
    content_type = value.get("content_type") or "application/octet-stream"
    content_id = value.get("content_id")
    if not isinstance(file_name, str) or not file_name.strip():
        raise InvalidField(f"{where}.file_name is required")
    if not isinstance(content, str):
        raise InvalidField(f"{where}.content must be a base64 string")
    if not isinstance(content_type, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", content_type):
        raise InvalidField(f"{where}.content_type must be a MIME type such as image/png")
    if content_id is not None and (not isinstance(content_id, str) or not content_id.strip()):
        raise InvalidField(f"{where}.content_id must be a non-empty string")
    _no_newlines(file_name, f"{where}.file_name")
    if content_id is not None:
        _no_newlines(content_id, f"{where}.content_id")
    extension = file_name.rpartition(".")[2].lower() if "." in file_name else ""
    if extension in BLOCKED_EXTENSIONS:
        raise BlockedAttachment(file_name, extension)
    try:
        decoded = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField(f"{where}.content is not valid base64") from None
    cid = content_id.strip("<> ") if content_id else None
    return Attachment(file_name, decoded, content_type.lower(), cid)


def _attachments(body: Mapping[str, Any]) -> tuple[Attachment, ...]:
    value = body.get("attachments")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidField("attachments must be a list")
    return tuple(_attachment(index, item) for index, item in enumerate(value))


def _tags(body: Mapping[str, Any]) -> tuple[str, ...]:
    tags: list[str] = []
    for item in _string_list(body, "tags"):
        for tag in item.split(","):
            tag = tag.strip()
            if not tag:
                continue
            _no_newlines(tag, "A tag")
            if len(tag) > MAX_TAG_LENGTH:
                raise InvalidField(f"tag {tag[:20]!r}... is longer than {MAX_TAG_LENGTH} characters")
            if tag not in tags:
                tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidField(f"at most {MAX_TAGS} tags per message")
    return tuple(tags)


def _utf8(value: str, name: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField(f"{name} is not valid Unicode text") from None


def read_priority(value: object) -> str:
    if value is None or value == "":
        return "standard"
    if not isinstance(value, str) or value.strip().lower() not in PRIORITIES:
        raise InvalidField(f"priority must be one of {', '.join(PRIORITIES)}; got {value!r}")
    return value.strip().lower()


def read_request(body: object) -> OutboundRequest:
    """Check a decoded JSON body and return the request it describes."""
    if not isinstance(body, dict):
        raise InvalidField("The request body must be a JSON object")
    unknown = sorted(set(body) - FIELDS - IGNORED_FIELDS)
    if unknown:
        raise InvalidField(f"Unknown field {unknown[0]!r}; known fields: {', '.join(sorted(FIELDS))}")
    sender = _sender(body)
    to = _addresses(body, "to")
    cc = _addresses(body, "cc")
    if not to:
        raise InvalidField("to is required" + (" (cc needs a to)" if cc else ""))
    test_mode = body.get("test_mode")
    if test_mode is not None and not isinstance(test_mode, bool):
        raise InvalidField("test_mode must be true or false")
    raw_text = _string(body, "raw")
    request = OutboundRequest(
        sender=sender,
        to=to,
        cc=cc,
        subject=_no_newlines(s, "The subject") if (s := _string(body, "subject")) is not None else None,
        plain=_string(body, "plain"),
        html=_string(body, "html"),
        markdown=_string(body, "markdown"),
        headers=_headers(body),
        attachments=_attachments(body),
        tags=_tags(body),
        priority=read_priority(body.get("priority")),
        test_mode=bool(test_mode),
        raw=_utf8(raw_text, "raw") if raw_text is not None else None,
    )
    if len(request.recipients) > MAX_RECIPIENTS:
        raise TooManyRecipients(MAX_RECIPIENTS)
    if request.raw is None and not (request.plain or request.html or request.markdown):
        raise NoBody()
    if request.raw is not None and (request.plain or request.html or request.markdown or request.attachments):
        raise InvalidField("raw carries the whole message: leave out plain, html, markdown and attachments")
    if request.raw is not None and body.get("headers"):
        # compose_raw sends the raw message's own head: extra headers would be dropped without a word.
        raise InvalidField("headers cannot be combined with raw: put them in the raw message")
    return request

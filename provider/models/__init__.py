"""All models, imported here so metadata is complete for migrations and for `Base.metadata`."""

from .address import Address
from .app_log import AppLogLine
from .base import Base
from .credential import Credential
from .domain import Domain
from .inbound_message import InboundMessage
from .outbound import OutboundEvent, OutboundMessage, OutboundRecipient, Suppression
from .resource import Resource
from .usage import Usage

__all__ = [
    "Address",
    "AppLogLine",
    "Base",
    "Credential",
    "Domain",
    "InboundMessage",
    "OutboundEvent",
    "OutboundMessage",
    "OutboundRecipient",
    "Resource",
    "Suppression",
    "Usage",
]

"""Changing a forward address's settings after provisioning: its target URL, format and whether
attachment sizes go out as strings.

One operation for every way in (the addresses API today, the dashboard's settings page later):
`settings_change` reads what a client sent into an `AddressChange` with the rules of
`addresses` (a readable `InvalidAddressSetting` for anything else, unknown fields included, so a
typo is never silently ignored), and `change_address` applies it in one transaction. The commit
is what reaches the SMTP edges: the `addresses` trigger (migration 0002) NOTIFYs the route
change, and every edge process drops its cached route, so the next message goes out with the new
settings without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Address, Resource
from ..plans import plan_named
from ..settings import Settings
from . import applog, applog_lines
from .addresses import (
    InvalidAddressSetting,
    validate_format,
    validate_size_as_string,
    validate_target,
)
from .stores import StoreConfig, StoresNotInPlan, check_store, store_fields, stored_config, write_config

log = logging.getLogger(__name__)

CHANGEABLE = ("target", "format", "size_as_string", "store")
READ_ONLY = ("id", "address", "created_at", "updated_at")
MAX_ADDRESS_ID = 2**31 - 1
"""The largest id the column (integer) holds; PostgreSQL refuses a larger one as a parameter."""


class UnknownAddress(LookupError):
    """The resource has no address with this id (another resource's address included, so ids
    tell a caller nothing about other customers)."""


@dataclass(frozen=True)
class AddressChange:
    """What to change; None leaves a setting as it is."""

    target: str | None = None
    format: str | None = None
    size_as_string: bool | None = None
    store_given: bool = False  # "store" was sent: `store` is what to merge in, None removes it
    store: Mapping[str, object] | None = None


def settings_change(fields: Mapping[str, object]) -> AddressChange:
    """The change `fields` asks for, or `InvalidAddressSetting` saying what is wrong with it."""
    for name in fields:
        if name in READ_ONLY:
            raise InvalidAddressSetting(f"{name} cannot be changed; {_changeable()} can.")
        if name not in CHANGEABLE:
            raise InvalidAddressSetting(f"Unknown field {name[:40]!r}; an address has {_changeable()}.")
    if not fields:
        raise InvalidAddressSetting(f"Nothing to change: send one or more of {_changeable()}.")
    if "target" in fields and fields["target"] is None:
        raise InvalidAddressSetting(
            "The target cannot be removed (mail to the address would bounce); "
            "give a URL such as https://example.com/incoming_mails."
        )
    store = fields.get("store")
    if store is not None and not isinstance(store, Mapping):
        raise InvalidAddressSetting("store must be a JSON object (or null to remove the store).")
    return AddressChange(
        store_given="store" in fields,
        store=store,
        target=validate_target(fields["target"]) if "target" in fields else None,
        format=validate_format(fields["format"]) if "format" in fields else None,
        size_as_string=(
            validate_size_as_string(fields["size_as_string"]) if "size_as_string" in fields else None
        ),
    )


def _changeable() -> str:
    return ", ".join(CHANGEABLE[:-1]) + " and " + CHANGEABLE[-1]


def resource_addresses(session: Session, resource_id: str) -> list[Address]:
    return list(
        session.scalars(select(Address).where(Address.resource_id == resource_id).order_by(Address.id))
    )


def resource_address(session: Session, resource_id: str, address_id: int, *, lock: bool = False) -> Address:
    """The resource's address `address_id`, or `UnknownAddress`."""
    if not 0 < address_id <= MAX_ADDRESS_ID:
        raise UnknownAddress(f"No address {address_id} on this account.")  # not even a query
    query = select(Address).where(Address.id == address_id, Address.resource_id == resource_id)
    address = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if address is None:
        raise UnknownAddress(f"No address {address_id} on this account.")
    return address


def change_address(
    session: Session, settings: Settings, resource_id: str, address_id: int, change: AddressChange
) -> Address:
    """Apply `change` to the resource's address and commit; `UnknownAddress` if it has none such.

    The row is locked for the change, so concurrent changes apply one after the other, each
    compared with what the previous one left. Nothing is written when nothing differs, so a
    repeated request costs no route notice and no log line.

    A store is checked first (`_checked_store`: the plan, then a test object written and
    deleted), outside the row lock, so a slow store never holds the lock.
    """
    new_store = None
    if change.store_given:
        new_store = _checked_store(session, settings, resource_id, address_id, change)
    try:
        address = resource_address(session, resource_id, address_id, lock=True)
        # Read after the lock, in a statement of its own: a deprovision that committed while we
        # waited is seen, and one still running waits for us and then clears the target itself.
        if not session.scalar(select(Resource.active).where(Resource.id == resource_id)):
            raise UnknownAddress(f"No address {address_id} on this account.")
    except UnknownAddress:
        session.rollback()
        raise
    changed: list[str] = []
    if change.target is not None and change.target != address.target_url:
        address.target_url = change.target
        changed.append("target")  # not the URL: its path or query may hold a token
    if change.format is not None and change.format != address.format:
        address.format = change.format
        changed.append(f"format={change.format}")
    if change.size_as_string is not None and change.size_as_string != address.size_as_string:
        address.size_as_string = change.size_as_string
        changed.append(f"size_as_string={str(change.size_as_string).lower()}")
    if change.store_given and (new_store is not None or address.store_bucket is not None):
        write_config(settings, address, new_store)
        changed.append(f"store=bucket:{new_store.bucket}" if new_store else "store=removed")
    if changed:
        what = " ".join(changed)
        applog.record(session, settings, resource_id, applog_lines.address_changed(address.local_id, what))
        log.info("address changed resource=%s address=%s %s", resource_id, address.id, what)
    session.commit()
    return address


def _checked_store(
    session: Session, settings: Settings, resource_id: str, address_id: int, change: AddressChange
) -> StoreConfig | None:
    """The store to save (None: remove it), after the plan allows it and a test object went in
    and out; `StoresNotInPlan` or `InvalidStore` otherwise. Ends its read transaction."""
    try:
        address = resource_address(session, resource_id, address_id)
        if change.store is None:
            return None
        plan = session.scalar(select(Resource.plan).where(Resource.id == resource_id))
        if not plan_named(plan).stores:
            raise StoresNotInPlan(plan_named(plan).name)
        store = store_fields(change.store, stored_config(settings, address))
    finally:
        session.rollback()
    assert store is not None
    check_store(store, settings.store_timeout)
    return store

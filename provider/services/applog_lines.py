"""What each event writes to the customer's app log (`heroku logs`), in one place.

Customers read and grep these lines, so they share one shape: the `cloudmailin: ` prefix, what
happened, then `key=value` details. Every process writes them (web, SMTP edge, workers), and
`services.applog` stores and ships whatever line it is given.
"""

from __future__ import annotations

PREFIX = "cloudmailin: "


def provisioned(plan: str, *, finished: bool = True) -> str:
    """`finished` False: async provisioning has only begun (a worker completes it)."""
    return f"{PREFIX}{'provisioned' if finished else 'provisioning'} plan={plan}"


def plan_changed(old: str, new: str) -> str:
    return f"{PREFIX}plan changed from={old} to={new}"


def deprovisioned() -> str:
    return f"{PREFIX}deprovisioned"


def provisioning_failed() -> str:
    return f"{PREFIX}provisioning failed, removing the add-on"


def address_changed(local_id: str, what: str) -> str:
    """`what`: the changed settings (`target`, `format=json`, ...); never a target URL, whose
    path or query may hold a token."""
    return f"{PREFIX}address {local_id} changed {what}"


def inbound(sender: str, recipient: str, status: str, target_ms: int | None) -> str:
    took = f" in {target_ms}ms" if target_ms is not None else ""
    return f"{PREFIX}inbound from={sender or '<>'} to={recipient} status={status}{took}"


def resend_queued(message_id: int, where: str) -> str:
    """`where`: "the dashboard" or "the API"; the re-send's own `inbound` line follows once posted."""
    return f"{PREFIX}re-send of inbound message {message_id} queued from {where}"


def domain(label: str, name: str, what: str) -> str:
    """`label`: "sending domain" or "inbound domain"; `what`: added (and for which local parts),
    verified, deleted, or released (with its reason)."""
    return f"{PREFIX}{label} {name} {what}"


def events_webhook(what: str) -> str:
    """`what`: set or removed (never the URL, which may carry credentials)."""
    return f"{PREFIX}events webhook {what}"


def suppression_removed(address: str, where: str) -> str:
    """`where`: "the dashboard" or "the API"; later mail to the address is attempted again."""
    return f"{PREFIX}{address} removed from the suppression list from {where}"


def key_rotated(username: str, old_key_ends: str) -> str:
    """Never the key itself."""
    return (
        f"{PREFIX}SMTP/API key rotated, new username={username}; the old key works until "
        f"{old_key_ends}; CLOUDMAILIN_SMTP_URL is being updated"
    )


def config_pushed() -> str:
    return f"{PREFIX}CLOUDMAILIN_SMTP_URL updated on the app"


def config_push_failed() -> str:
    return (
        f"{PREFIX}CLOUDMAILIN_SMTP_URL could not be updated on the app; rotate the key again from "
        "the dashboard before the old key expires"
    )


def signing_secret_rotated(local_id: str) -> str:
    """Never the secret; POSTs signed with the old one fail verification from now on."""
    return f"{PREFIX}address {local_id} signing secret rotated; the old secret no longer signs POSTs"


def test_message(local_id: str, status: str, target_ms: int) -> str:
    """`status`: the target's HTTP code, or client_timeout / unreachable (as in the history)."""
    return f"{PREFIX}address {local_id} test message sent from the dashboard status={status} in {target_ms}ms"

"""The SSO form Heroku's launch page posts, computed as Heroku computes it (spec/heroku.md, SSO)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

USER_ID = "user-123@users.heroku.com"
EMAIL = "dev@example.com"
APP = "shiny-app"


def now() -> int:
    return int(datetime.now(UTC).timestamp())


def nav_data(app: str = APP) -> str:
    raw = json.dumps({"addon": "cloudmailin-shaped-12345", "appname": app}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def fields(
    resource_id: str,
    salt: str,
    *,
    timestamp: int | None = None,
    kinds: tuple[str, ...] = ("user", "resource"),
) -> dict[str, str]:
    ts = str(now() if timestamp is None else timestamp)
    form = {
        "resource_id": resource_id,
        "timestamp": ts,
        "email": EMAIL,
        "user_id": USER_ID,
        "app": APP,
        "context_app": APP,
        "nav-data": nav_data(),
    }
    if "user" in kinds:
        form["user_scoped_resource_token"] = hashlib.sha256(
            f"{resource_id}:{salt}:{ts}:{USER_ID}:{EMAIL}".encode()
        ).hexdigest()
    if "resource" in kinds:
        form["resource_token"] = hashlib.sha1(f"{resource_id}:{salt}:{ts}".encode()).hexdigest()  # noqa: S324
    if "legacy" in kinds:
        form["id"] = resource_id
        form["token"] = hashlib.sha1(f"{resource_id}:{salt}:{ts}".encode()).hexdigest()  # noqa: S324
    return form

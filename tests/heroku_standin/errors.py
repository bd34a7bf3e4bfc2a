"""The one error type the stand-in raises; its handler answers Heroku's `{"id", "message"}` shape."""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    def __init__(self, status: int, error_id: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"id": self.error_id, "message": self.message, **self.extra}


def not_found(resource: str, message: str) -> PlatformError:
    """Heroku names the missing resource; the CLI's resolvers branch on `resource`."""
    return PlatformError(404, "not_found", message, resource=resource)

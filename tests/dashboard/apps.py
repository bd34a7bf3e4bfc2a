"""The dashboard tests' Flask apps."""

from __future__ import annotations

from flask import Flask

from provider.extensions import db


def dispose(app: Flask) -> None:
    """Close the app's pooled connections now rather than when the garbage collector finds it
    (the embedded PostgreSQL has a small max_connections, shared with the SMTP edge's writers)."""
    with app.app_context():
        db.engine.dispose()

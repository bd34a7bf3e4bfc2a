"""The web process's Flask extensions: Flask-SQLAlchemy's request-scoped `db.session` for the
views, and Flask-Migrate for `flask --app provider db upgrade`.

Kept apart from provider/db.py so that the SMTP edge and the workers, which use the same models
through `provider.db.session_factory`, never load Flask.
"""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from .models import Base

db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()

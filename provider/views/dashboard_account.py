"""The dashboard's account pages: rotating the SMTP/API key, and downloading the archive.

Both act on the one resource the SSO session is bound to (`dashboard.signed_in_resource`); no
page takes a resource id, so another resource's session cannot reach this one. Forms are
Flask-WTF forms, so every POST carries a CSRF token checked before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, flash, redirect, render_template, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SubmitField

from ..extensions import db
from ..models.base import utcnow
from ..services import archive, key_rotation, oauth_tokens
from ..services.credentials import ROTATION_GRACE
from . import current_settings
from .dashboard_guard import guard, signed_in_resource
from .sso import refused

bp = guard(Blueprint("dashboard_account", __name__))

NOT_SIGNED_IN = "Open CloudMailin from your app's page on Heroku to sign in."


class RotateForm(FlaskForm):
    submit = SubmitField("Rotate the key")


@bp.get("/dashboard/credentials")
def credentials() -> ResponseReturnValue:
    resource = signed_in_resource()
    if resource is None:
        return refused(NOT_SIGNED_IN, 403)
    summary = key_rotation.key_summary(current_settings(), resource)
    return render_template(
        "account/credentials.html", summary=summary, form=RotateForm(),
        grace_hours=int(ROTATION_GRACE.total_seconds() // 3600),
    )


@bp.post("/dashboard/credentials/rotate")
def rotate() -> ResponseReturnValue:
    resource = signed_in_resource()
    if resource is None:
        return refused(NOT_SIGNED_IN, 403)
    form = RotateForm()
    if not form.validate_on_submit():
        # Only the CSRF token can fail: the form has no other field.
        return refused("The form expired or did not come from this page; open it again.", 400)
    session = db.session()
    locked = oauth_tokens.lock_resource(session, resource.id)
    if locked is None or not locked.active:
        return refused(NOT_SIGNED_IN, 403)
    pair = key_rotation.rotate_key(session, current_settings(), locked)
    session.commit()
    flash(f"New key issued for username {pair.username}; CLOUDMAILIN_SMTP_URL is being updated on the app.")
    return redirect(url_for("dashboard_account.credentials"), code=303)


@bp.get("/dashboard/archive")
def download_archive() -> ResponseReturnValue:
    resource = signed_in_resource()
    if resource is None:
        return refused(NOT_SIGNED_IN, 403)
    now = utcnow()
    resource_id = resource.id

    def chunks() -> Iterator[bytes]:
        # The download outlives the view: its session (and the server-side cursor's transaction)
        # is closed here when the stream ends or the client goes away, not left to teardown.
        session = db.session()
        try:
            yield from archive.archive_chunks(session, resource_id, now=now)
        finally:
            session.close()

    return Response(
        stream_with_context(chunks()),
        mimetype="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="{archive.archive_name(resource.id, now)}"',
            "Cache-Control": "no-store",
        },
    )

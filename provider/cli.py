"""Operator commands beside `flask --app provider db upgrade`: `flask --app provider secrets rotate`.

Run where the web process runs (`heroku run flask --app provider secrets rotate`), with the
deployment's settings; README, "Rotating ENCRYPTION_KEY", gives the whole procedure.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .crypto import box_for
from .extensions import db
from .services.reencrypt import DEFAULT_BATCH, reencrypt_all
from .settings import Settings

secrets_cli = AppGroup("secrets", help="Secrets stored encrypted under ENCRYPTION_KEY.")


@secrets_cli.command("rotate")
@click.option(
    "--batch-size", default=DEFAULT_BATCH, show_default=True, type=click.IntRange(1, 10_000),
    help="Rows re-encrypted (and locked) per transaction.",
)
def rotate(batch_size: int) -> None:
    """Re-encrypt every stored secret under ENCRYPTION_KEY, so ENCRYPTION_KEYS_OLD can be removed.

    Idempotent: values already under ENCRYPTION_KEY are left alone, so it can be run again at
    any time. Exits 1 when a value no configured key decrypts was found (it is left unchanged).
    """
    settings: Settings = current_app.extensions["cloudmailin_settings"]
    reports = reencrypt_all(db.session(), box_for(settings), batch_size=batch_size)
    for report in reports:
        click.echo(
            f"{report.table}.{report.column}: {report.reencrypted} re-encrypted, "
            f"{report.current} already current, {report.undecryptable} undecryptable"
        )
    reencrypted = sum(r.reencrypted for r in reports)
    undecryptable = sum(r.undecryptable for r in reports)
    click.echo(f"total: {reencrypted} re-encrypted, {undecryptable} undecryptable")
    if undecryptable:
        raise click.ClickException(
            f"{undecryptable} stored secrets match neither ENCRYPTION_KEY nor ENCRYPTION_KEYS_OLD; "
            "they were left unchanged. Keep the old keys until they are accounted for."
        )
    if reencrypted == 0 and settings.encryption_keys_old:
        click.echo("every secret is under ENCRYPTION_KEY: ENCRYPTION_KEYS_OLD can be removed")


def init_app(app: Flask) -> None:
    app.cli.add_command(secrets_cli)

"""`python -m tests.heroku_standin --port N ...`: the stand-in in the foreground (for `make run`).

Secrets come from the environment (the development runner gives it the same values as the
provider) or as arguments; the manifest, if given, supplies the add-on id, config var names and
the test URLs."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from tests.heroku_standin.config import StandinConfig
from tests.heroku_standin.server import bind


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.heroku_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--manifest", type=Path, help="addon-manifest.json to take id/vars/URLs from")
    parser.add_argument("--provider-url", help="the provider's base_url (overrides the manifest)")
    parser.add_argument("--sso-url", help="the provider's sso_url (overrides the manifest)")
    # Secrets default to the environment, so they need not show in `ps` output.
    env = os.environ.get
    parser.add_argument("--addon-password", default=env("HEROKU_ADDON_PASSWORD"))
    parser.add_argument("--sso-salt", default=env("HEROKU_SSO_SALT"))
    parser.add_argument("--client-secret", default=env("HEROKU_OAUTH_CLIENT_SECRET"),
                        help="OAuth client secret (default: $HEROKU_OAUTH_CLIENT_SECRET)")
    parser.add_argument("--api-key", default=env("HEROKU_API_KEY"),
                        help="what the CLI sends as HEROKU_API_KEY (default: $HEROKU_API_KEY)")
    parser.add_argument("--app", action="append", default=[], help="an app to create (repeatable)")
    args = parser.parse_args(argv)
    missing = [name for name in ("addon_password", "sso_salt", "client_secret", "api_key")
               if not getattr(args, name)]
    if missing:
        parser.error("missing secrets: " + ", ".join(f"--{name.replace('_', '-')}" for name in missing))
    return args


def build_config(args: argparse.Namespace) -> StandinConfig:
    values: dict[str, Any] = {
        "addon_password": args.addon_password,
        "sso_salt": args.sso_salt,
        "oauth_client_secret": args.client_secret,
        "api_key": args.api_key,
        "apps": tuple(args.app) or ("demo",),
    }
    if args.provider_url:
        values["provider_base_url"] = args.provider_url
    if args.sso_url:
        values["provider_sso_url"] = args.sso_url
    if args.manifest:
        manifest = json.loads(args.manifest.read_text())
        return StandinConfig.from_manifest(manifest, **values)
    missing = [
        flag
        for flag, key in (("--provider-url", "provider_base_url"), ("--sso-url", "provider_sso_url"))
        if key not in values
    ]
    if missing:
        raise SystemExit(f"give --manifest or {' and '.join(missing)}")
    return StandinConfig(**values)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="heroku-standin: %(message)s")
    running = bind(build_config(args), host=args.host, port=args.port)
    print(f"heroku stand-in listening on {running.url} (HEROKU_HOST for the CLI)", flush=True)
    try:
        running.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        running.server.server_close()


if __name__ == "__main__":
    main()

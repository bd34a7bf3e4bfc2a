"""`make run`: the whole service on one machine.

Starts embedded PostgreSQL and Redis in `.data/` (unless DATABASE_URL / REDIS_URL are set), keeps
development secrets in `.data/dev.env` so data encrypted in one run decrypts in the next, applies
migrations the way the `release` process does, and runs the Procfile's web, smtp and worker
processes under honcho. Ctrl-C stops everything; the data stays for the next run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from provider.crypto import new_encryption_key

from .services import embedded

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
WEB_PORT = int(os.environ.get("PORT", "5000"))


def dev_secrets() -> dict[str, str]:
    """Secrets generated on the first run and reused after, never committed."""
    path = DATA / "dev.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value
    defaults = {
        "ENCRYPTION_KEY": new_encryption_key,
        "SECRET_KEY": lambda: secrets.token_hex(16),
        "HEROKU_ADDON_PASSWORD": lambda: secrets.token_hex(16),
        "HEROKU_SSO_SALT": lambda: secrets.token_hex(16),
        "HEROKU_OAUTH_CLIENT_SECRET": lambda: secrets.token_hex(16),
    }
    for key, make in defaults.items():
        values.setdefault(key, make())
    DATA.mkdir(exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return values


@contextlib.contextmanager
def backing_services() -> Iterator[dict[str, str]]:
    given = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL") if os.environ.get(k)}
    if len(given) == 2:
        yield given
        return
    with embedded(DATA, "cloudmailin") as svc:
        yield {"DATABASE_URL": svc.database_url, "REDIS_URL": svc.redis_url, **given}


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM (from a supervisor or `kill`) stops as cleanly as Ctrl-C: servers shut down, data kept.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    env = dict(os.environ)
    env.update({k: v for k, v in dev_secrets().items() if not os.environ.get(k)})
    env.setdefault("PORT", str(WEB_PORT))
    env.setdefault("PUBLIC_URL", f"http://localhost:{WEB_PORT}")
    env.setdefault("SMTP_MX_PORT", "2500")
    env.setdefault("SMTP_SUBMISSION_PORT", "2525")
    env.setdefault("SMTP_PUBLIC_HOST", "localhost")
    env.setdefault("SMTP_PUBLIC_PORT", env["SMTP_SUBMISSION_PORT"])
    env.setdefault("INBOUND_DOMAIN", "cloudmailin.localhost")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with backing_services() as urls:
        env.update(urls)
        subprocess.run(["flask", "--app", "provider", "db", "upgrade"], env=env, check=True)
        print(banner(env), flush=True)
        honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start"]
        proc = subprocess.Popen([*honcho, "web", "smtp", "worker"], env=env, cwd=ROOT)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def banner(env: dict[str, str]) -> str:
    return f"""
CloudMailin add-on backend, development mode
  web (partner API, SSO, dashboard)  http://localhost:{env['PORT']}
  smtp MX listener                   localhost:{env['SMTP_MX_PORT']}
  smtp submission listener           localhost:{env['SMTP_SUBMISSION_PORT']}
  PostgreSQL                         {env['DATABASE_URL']}
  Redis                              {env['REDIS_URL']}
  secrets                            .data/dev.env
Ctrl-C stops everything; data stays in .data/ for the next run.
"""


if __name__ == "__main__":
    sys.exit(main())

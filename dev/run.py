"""`make run`: the whole service on one machine.

Starts embedded PostgreSQL and Redis in `.data/` (unless DATABASE_URL / REDIS_URL are set) and a
SeaweedFS S3 gateway (an attachment and message store for the demo address to use), keeps
development secrets in `.data/dev.env` so data encrypted in one run decrypts in the next, applies
migrations the way the `release` process does, and runs the Procfile's web, smtp, worker and
delivery processes under honcho, beside the local stand-in of Heroku's platform and a demo target. Once the
web process answers, it provisions a demo add-on through the stand-in (as `heroku addons:create`
would) and prints its config vars. Ctrl-C stops everything; the data stays for the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provider.crypto import new_encryption_key

from .services import S3Server, embedded, start_seaweedfs

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEV_DATA_DIR") or ROOT / ".data")
WEB_PORT = int(os.environ.get("PORT", "5000"))
STANDIN_PORT = int(os.environ.get("STANDIN_PORT", "5100"))
TARGET_PORT = int(os.environ.get("DEMO_TARGET_PORT", "5200"))
DEMO_MX_PORT = int(os.environ.get("DEMO_MX_PORT", "5300"))
DEMO_S3_PORT = int(os.environ.get("DEMO_S3_PORT", "5400"))
DEMO_BUCKET = "demo-mail"
DEMO_APP = "demo"


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
        "HEROKU_API_KEY": lambda: secrets.token_hex(16),
        "DEV_S3_ACCESS_KEY_ID": lambda: "dev" + secrets.token_hex(8),
        "DEV_S3_SECRET_ACCESS_KEY": lambda: secrets.token_hex(20),
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


@contextlib.contextmanager
def demo_store(env: dict[str, str]) -> Iterator[S3Server]:
    """SeaweedFS in `.data/seaweedfs` on DEMO_S3_PORT (kept, so a store saved on the demo address
    keeps working next run), with the bucket `demo-mail`; its other ports are free ones."""
    server = start_seaweedfs(
        DATA / "seaweedfs", env["DEV_S3_ACCESS_KEY_ID"], env["DEV_S3_SECRET_ACCESS_KEY"],
        s3_port=DEMO_S3_PORT, buckets=(DEMO_BUCKET,),
    )
    try:
        yield server
    finally:
        server.stop()


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


STOP_SIGNALS = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
"""Each signal and how long to wait for the processes it was sent to. SIGINT first, as Ctrl-C:
honcho stops web, smtp and worker (itself escalating after 5 s) and the servers shut down cleanly.
A runner started with SIGINT ignored (`nohup`, a supervisor) passes that on to every child it
starts, and a Python program keeps an inherited ignored SIGINT, so the stand-in and the demo target
would never hear it: SIGTERM comes next, and SIGKILL for anything still there."""


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for signum, wait in STOP_SIGNALS:
        alive = [proc for proc in procs if proc.poll() is None]
        if not alive:
            return
        for proc in alive:
            proc.send_signal(signum)
        deadline = time.monotonic() + wait
        for proc in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))


def service_env(secret_values: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: v for k, v in secret_values.items() if not os.environ.get(k)})
    standin = f"http://localhost:{STANDIN_PORT}"
    env.setdefault("PORT", str(WEB_PORT))
    env.setdefault("PUBLIC_URL", f"http://localhost:{WEB_PORT}")
    env.setdefault("HEROKU_API_URL", standin)
    env.setdefault("HEROKU_ID_URL", standin)
    env.setdefault("SMTP_MX_PORT", "2500")
    env.setdefault("SMTP_SUBMISSION_PORT", "2525")
    env.setdefault("SMTP_PUBLIC_HOST", "localhost")
    env.setdefault("SMTP_PUBLIC_PORT", env["SMTP_SUBMISSION_PORT"])
    env.setdefault("INBOUND_DOMAIN", "cloudmailin.localhost")
    env.setdefault("SMTP_DATA_DIR", str(DATA))
    env.setdefault("SENDING_DOMAIN_VERIFICATION", "off")  # send from any domain while developing
    env.setdefault("OUTBOUND_SMARTHOST", f"127.0.0.1:{DEMO_MX_PORT}")  # the internet is not reachable
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def side_processes(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """Heroku's side (the stand-in, also the OAuth server), the demo app's target and the demo MX."""
    standin = [
        sys.executable, "-m", "tests.heroku_standin", "--port", str(STANDIN_PORT),
        "--manifest", str(ROOT / "addon-manifest.json"),
        "--provider-url", f"http://localhost:{env['PORT']}/heroku/resources",
        "--sso-url", f"http://localhost:{env['PORT']}/sso/login",
        "--app", DEMO_APP,  # the secrets come from `env`, not the command line
    ]
    target = [sys.executable, "-m", "dev.echo_target", str(TARGET_PORT)]
    mx = [sys.executable, "-m", "dev.demo_mx", str(DEMO_MX_PORT)]
    return [subprocess.Popen(cmd, env=env, cwd=ROOT) for cmd in (standin, target, mx)]


def _call(url: str, api_key: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 (http://localhost only)
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/vnd.heroku+json; version=3",
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


def provision_demo(env: dict[str, str]) -> str:
    """Provision the demo add-on through the stand-in, once; return its config vars for the banner."""
    standin = f"http://localhost:{STANDIN_PORT}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _call(f"http://localhost:{env['PORT']}/healthz", "")
            addons = _call(f"{standin}/apps/{DEMO_APP}/addons", env["HEROKU_API_KEY"])
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                return "  (the web process or the stand-in did not come up; see the log above)"
            time.sleep(0.5)
    if not addons:
        _call(f"{standin}/apps/{DEMO_APP}/addons", env["HEROKU_API_KEY"], {
            "plan": {"name": "cloudmailin:starter"},
            "config": {"target": f"http://127.0.0.1:{TARGET_PORT}/incoming"},
        })
    config = _call(f"{standin}/apps/{DEMO_APP}/config-vars", env["HEROKU_API_KEY"]) or {}
    return "\n".join(f"  {name}={value}" for name, value in sorted(config.items())) or "  (none yet)"


def main() -> int:
    # SIGTERM (from a supervisor or `kill`) stops as cleanly as Ctrl-C: servers shut down, data kept.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    env = service_env(dev_secrets())
    with backing_services() as urls, demo_store(env) as store:
        env.update(urls)
        subprocess.run(["flask", "--app", "provider", "db", "upgrade"], env=env, check=True)
        honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start"]
        procs = [subprocess.Popen([*honcho, "web", "smtp", "worker", "delivery"], env=env, cwd=ROOT)]
        procs += side_processes(env)
        try:
            print(banner(env, provision_demo(env), store), flush=True)
            return procs[0].wait()
        except KeyboardInterrupt:
            return 0
        finally:
            # A second Ctrl-C or SIGTERM must not cut the stop short and leave children behind;
            # the stop is bounded by STOP_SIGNALS.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop(procs)


def banner(env: dict[str, str], demo_config: str, store: S3Server) -> str:
    mx = env["SMTP_MX_PORT"]
    store_body = json.dumps({"store": {
        "bucket": DEMO_BUCKET, "endpoint_url": store.endpoint_url, "access_key_id": store.access_key_id,
        "secret_access_key": store.secret_access_key, "attachments": True, "messages": True,
    }})
    return f"""
CloudMailin add-on backend, development mode
  web (partner API, SSO, dashboard)  http://localhost:{env['PORT']}
  smtp MX listener                   localhost:{mx}
  smtp submission listener           localhost:{env['SMTP_SUBMISSION_PORT']} (STARTTLS, then AUTH)
  Heroku stand-in (HEROKU_HOST)      http://localhost:{STANDIN_PORT}
  demo target (the app)              http://127.0.0.1:{TARGET_PORT}/incoming (prints each POST)
  demo MX (all outbound mail)        127.0.0.1:{DEMO_MX_PORT} (prints each message delivered)
  PostgreSQL                         {env['DATABASE_URL']}
  Redis                              {env['REDIS_URL']}
  S3 store (SeaweedFS)               {store.endpoint_url} bucket {DEMO_BUCKET}, key id {store.access_key_id}
  secrets                            .data/dev.env

The demo app's add-on ({DEMO_APP}), provisioned through the stand-in:
{demo_config}

Try it:
  bin/heroku config -a {DEMO_APP}                 # the real Heroku CLI against the stand-in
  bin/heroku addons:open cloudmailin -a {DEMO_APP} --show-url   # SSO into the dashboard
  .data/tools/usr/bin/swaks --server localhost:{mx} --to <CLOUDMAILIN_FORWARD_ADDRESS>
      (or any SMTP client; the demo target prints the POST)
  # store the demo address's mail in SeaweedFS (USER, KEY: CLOUDMAILIN_SMTP_URL; ID: GET .../addresses):
  curl -X PATCH -H "Authorization: Bearer <KEY>" -H "Content-Type: application/json" \\
       -d '{store_body}' http://localhost:{env['PORT']}/api/v0.1/<USER>/addresses/<ID>
Ctrl-C stops everything; data stays in .data/ for the next run.
"""


if __name__ == "__main__":
    sys.exit(main())

"""Run the real Heroku CLI (npm `heroku`, pinned in tests/npm) against a local stand-in.

The environment is built from scratch so the CLI talks to nothing but 127.0.0.1: no telemetry
(it would call backboard.heroku.com), no update checks or auto-update, and a private HOME, XDG
folders and global git config (its init hook writes a credential helper into the *global* git
config on every command). Details: tests/npm/README.md.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NPM_DIR = Path(__file__).resolve().parent / "npm"
HEROKU_BIN = NPM_DIR / "node_modules" / ".bin" / "heroku"
CLOUDMAILIN_PACKAGE = NPM_DIR / "node_modules" / "cloudmailin"
EXPRESS_PACKAGE = NPM_DIR / "node_modules" / "express"
NODEMAILER_PACKAGE = NPM_DIR / "node_modules" / "nodemailer"
NPM_PACKAGES = (HEROKU_BIN, CLOUDMAILIN_PACKAGE, EXPRESS_PACKAGE, NODEMAILER_PACKAGE)


def ensure_npm_tools() -> None:
    """`npm ci` from the lock file if the tools are missing (the Makefile does it first; this
    covers a bare `pytest`). A file lock keeps parallel test workers from installing twice."""
    if all(path.exists() for path in NPM_PACKAGES):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed; it is needed to install tests/npm")
    with open(NPM_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(path.exists() for path in NPM_PACKAGES):
            subprocess.run(
                [npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
                check=True,
                timeout=600,
            )


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> CliResult:
        """This result, or an AssertionError that shows what the CLI said."""
        if self.returncode != 0:
            raise AssertionError(
                f"heroku {' '.join(self.args)} exited {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
            )
        return self


def cli_env(api_url: str, api_key: str, home: Path) -> dict[str, str]:
    """Everything the CLI needs, and nothing from the machine beyond PATH and the locale."""
    cache, config, data = home / ".cache", home / ".config", home / ".local" / "share"
    for folder in (cache / "heroku", config, data):
        folder.mkdir(parents=True, exist_ok=True)
    # Seen once per cache folder, otherwise a terms-of-service warning lands on stderr.
    (cache / "heroku" / "terms-of-service").touch()
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(config),
        "XDG_DATA_HOME": str(data),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "HEROKU_HOST": api_url,
        "HEROKU_API_KEY": api_key,
        "HEROKU_PARTICLEBOARD_URL": api_url,
        "DISABLE_TELEMETRY": "true",
        "HEROKU_SKIP_NEW_VERSION_CHECK": "true",
        "HEROKU_DISABLE_AUTOUPDATE": "true",
        "HEROKU_SKIP_ANALYTICS": "1",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
        "CI": "true",
    }


class HerokuCli:
    """`cli.run("addons:create", "cloudmailin:starter", "-a", "demo")` -> CliResult."""

    def __init__(self, api_url: str, api_key: str, home: Path) -> None:
        ensure_npm_tools()
        self.home = home
        self.env = cli_env(api_url, api_key, home)

    def run(self, *args: str, timeout: float = 120) -> CliResult:
        done = subprocess.run(
            [str(HEROKU_BIN), *args],
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(tuple(args), done.returncode, done.stdout, done.stderr)

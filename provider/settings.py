"""The one place that reads the environment.

Every process (web, smtp, worker, the development runner) builds a `Settings` from `os.environ`
through `load_settings`; nothing else in the code base reads environment variables. Tests build
their own `Settings` with `load_settings(env)` so they never depend on the machine's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from .crypto import fernet_key

PROVISIONING_MODES = ("sync", "async")


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at start-up so a bad deploy fails loudly."""


def normalise_database_url(url: str) -> str:
    """Heroku Postgres hands out `postgres://`, which SQLAlchemy no longer accepts; pin psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    # Flask session signing; and the key (Fernet, urlsafe base64 of 32 bytes) for secrets at rest.
    secret_key: str
    encryption_key: str
    # Keys being rotated out: they decrypt, never encrypt (README, "Rotating ENCRYPTION_KEY").
    encryption_keys_old: tuple[str, ...] = ()
    # Previous session signing keys (Flask's SECRET_KEY_FALLBACKS): cookies signed with them stay valid.
    secret_key_fallbacks: tuple[str, ...] = ()

    # Heroku partner protocol (values come from the add-on manifest, which holds placeholders).
    addon_id: str = "cloudmailin"
    addon_password: str = ""
    sso_salt: str = ""
    oauth_client_secret: str = ""
    heroku_api_url: str = "https://api.heroku.com"
    heroku_id_url: str = "https://id.heroku.com"
    provisioning_mode: str = "sync"

    # What users see in their config vars.
    inbound_domain: str = "cloudmailin.net"
    smtp_public_host: str = "smtp.cloudmailin.net"
    smtp_public_port: int = 587
    public_url: str = "http://localhost:5000"

    # SMTP edge listeners.
    smtp_bind_host: str = "127.0.0.1"
    smtp_mx_port: int = 2500
    smtp_submission_port: int = 2525
    smtp_hostname: str = "mx.cloudmailin.local"
    smtp_tls_cert: str = ""
    smtp_tls_key: str = ""
    smtp_data_dir: str = ".data"
    smtp_max_sessions: int = 500
    smtp_command_timeout: float = 300.0
    # One client address's share of SMTP_MAX_SESSIONS (IPv6: one /64), and the shorter idle limit
    # while no mail transaction is open (before MAIL, between messages), and a session's whole length.
    smtp_max_sessions_per_client: int = 25
    smtp_pre_mail_timeout: float = 60.0
    smtp_session_time_limit: float = 1800.0
    target_timeout: float = 30.0
    # Seconds one request to an address's S3-compatible store may take (connect, and each read).
    store_timeout: float = 10.0
    dns_nameservers: str = ""
    # Where mail to postmaster@INBOUND_DOMAIN is POSTed (JSON format); empty: accepted and logged.
    postmaster_target_url: str = ""
    # The host custom inbound domains point their MX at (verified before they are routed).
    inbound_mx_host: str = "mx.cloudmailin.net"

    # Outbound mail.
    sending_domain_verification: bool = True
    bounce_domain: str = "bounces.cloudmailin.net"
    # The host sending domains are told to `include:` in their SPF record (a suggestion, not checked).
    spf_include: str = "spf.cloudmailin.net"
    outbound_smarthost: str = ""
    outbound_mx_port: int = 25
    outbound_command_timeout: float = 120.0
    outbound_lease_seconds: float = 600.0
    # Seconds between runs of the periodic sweep (workers/jobs/sweep.py), which re-enqueues lost work.
    sweep_interval: int = 60

    log_level: str = "INFO"
    testing: bool = False

    @property
    def sync_provisioning(self) -> bool:
        return self.provisioning_mode == "sync"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (the process environment by default)."""
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "")
    redis_url = env.get("REDIS_URL", "")
    if not database_url:
        raise SettingsError("DATABASE_URL is not set (make run starts an embedded PostgreSQL)")
    if not redis_url:
        raise SettingsError("REDIS_URL is not set (make run starts an embedded Redis)")
    encryption_key = env.get("ENCRYPTION_KEY", "")
    if not encryption_key:
        raise SettingsError("ENCRYPTION_KEY is not set (generate one with `make run` or app.json)")
    try:
        fernet_key(encryption_key)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    old_keys = _old_encryption_keys(env.get("ENCRYPTION_KEYS_OLD", ""), encryption_key)
    if bool(env.get("SMTP_TLS_CERT")) != bool(env.get("SMTP_TLS_KEY")):
        raise SettingsError("SMTP_TLS_CERT and SMTP_TLS_KEY go together: set both, or neither for a "
                            "self-signed certificate")
    verification = env.get("SENDING_DOMAIN_VERIFICATION", "on").strip().lower()
    if verification not in ("on", "off"):
        raise SettingsError(f"SENDING_DOMAIN_VERIFICATION must be on or off, got {verification!r}")
    inbound_domain = env.get("INBOUND_DOMAIN", "cloudmailin.net").lower()
    mode = env.get("PROVISIONING_MODE", "sync")
    sweep_interval = _int(env, "SWEEP_INTERVAL", 60)
    if sweep_interval < 1:
        raise SettingsError(f"SWEEP_INTERVAL must be at least 1 second, got {sweep_interval}")
    if mode not in PROVISIONING_MODES:
        raise SettingsError(f"PROVISIONING_MODE must be one of {PROVISIONING_MODES}, got {mode!r}")
    return Settings(
        database_url=normalise_database_url(database_url),
        redis_url=redis_url,
        secret_key=env.get("SECRET_KEY", "") or encryption_key,
        encryption_key=encryption_key,
        encryption_keys_old=old_keys,
        # Without SECRET_KEY the session key rotates with ENCRYPTION_KEY; the old keys keep the
        # dashboard's signed-in users signed in until the old keys are removed.
        secret_key_fallbacks=() if env.get("SECRET_KEY") else old_keys,
        addon_id=env.get("HEROKU_ADDON_ID", "cloudmailin"),
        addon_password=env.get("HEROKU_ADDON_PASSWORD", ""),
        sso_salt=env.get("HEROKU_SSO_SALT", ""),
        oauth_client_secret=env.get("HEROKU_OAUTH_CLIENT_SECRET", ""),
        heroku_api_url=env.get("HEROKU_API_URL", "https://api.heroku.com").rstrip("/"),
        heroku_id_url=env.get("HEROKU_ID_URL", "https://id.heroku.com").rstrip("/"),
        provisioning_mode=mode,
        inbound_domain=inbound_domain,
        smtp_public_host=env.get("SMTP_PUBLIC_HOST", "smtp.cloudmailin.net"),
        smtp_public_port=_int(env, "SMTP_PUBLIC_PORT", 587),
        public_url=env.get("PUBLIC_URL", "http://localhost:5000").rstrip("/"),
        smtp_bind_host=env.get("SMTP_BIND_HOST", "127.0.0.1"),
        smtp_mx_port=_int(env, "SMTP_MX_PORT", 2500),
        smtp_submission_port=_int(env, "SMTP_SUBMISSION_PORT", 2525),
        smtp_hostname=env.get("SMTP_HOSTNAME", "mx.cloudmailin.local"),
        smtp_tls_cert=env.get("SMTP_TLS_CERT", ""),
        smtp_tls_key=env.get("SMTP_TLS_KEY", ""),
        smtp_data_dir=env.get("SMTP_DATA_DIR", ".data"),
        smtp_max_sessions=_int(env, "SMTP_MAX_SESSIONS", 500),
        smtp_command_timeout=_float(env, "SMTP_COMMAND_TIMEOUT", 300.0),
        smtp_max_sessions_per_client=_int(env, "SMTP_MAX_SESSIONS_PER_CLIENT", 25),
        smtp_pre_mail_timeout=_float(env, "SMTP_PRE_MAIL_TIMEOUT", 60.0),
        smtp_session_time_limit=_float(env, "SMTP_SESSION_TIME_LIMIT", 1800.0),
        target_timeout=_float(env, "TARGET_TIMEOUT", 30.0),
        store_timeout=_float(env, "STORE_TIMEOUT", 10.0),
        dns_nameservers=env.get("DNS_NAMESERVERS", ""),
        postmaster_target_url=env.get("POSTMASTER_TARGET_URL", ""),
        inbound_mx_host=(env.get("INBOUND_MX_HOST", "") or f"mx.{inbound_domain}").lower().rstrip("."),
        sending_domain_verification=verification == "on",
        bounce_domain=(env.get("BOUNCE_DOMAIN", "") or f"bounces.{inbound_domain}").lower(),
        spf_include=(env.get("SPF_INCLUDE", "") or f"spf.{inbound_domain}").lower(),
        outbound_smarthost=env.get("OUTBOUND_SMARTHOST", ""),
        outbound_mx_port=_int(env, "OUTBOUND_MX_PORT", 25),
        outbound_command_timeout=_float(env, "OUTBOUND_COMMAND_TIMEOUT", 120.0),
        outbound_lease_seconds=_float(env, "OUTBOUND_LEASE_SECONDS", 600.0),
        sweep_interval=sweep_interval,
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        testing=_bool(env.get("TESTING", "")),
    )


def _old_encryption_keys(raw: str, current: str) -> tuple[str, ...]:
    """ENCRYPTION_KEYS_OLD: comma-separated keys in either form ENCRYPTION_KEY takes."""
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    for position, key in enumerate(keys, start=1):
        try:
            fernet_key(key)
        except ValueError:
            raise SettingsError(
                f"ENCRYPTION_KEYS_OLD: key {position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes) or 64 hex digits"
            ) from None
    return tuple(key for key in keys if key != current)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once; processes call this at start-up, never at import time."""
    return load_settings()

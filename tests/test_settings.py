import secrets

import pytest

from provider.crypto import SecretBox, box_for, new_encryption_key
from provider.settings import SettingsError, load_settings

KEY = new_encryption_key()
BASE = {"DATABASE_URL": "postgres://u:p@h/db", "REDIS_URL": "redis://h", "ENCRYPTION_KEY": KEY}


def test_heroku_postgres_scheme_is_accepted_and_pinned_to_psycopg():
    assert load_settings(BASE).database_url == "postgresql+psycopg://u:p@h/db"


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEY"])
def test_missing_required_setting_names_the_variable(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(env)


def test_unknown_provisioning_mode_is_refused():
    with pytest.raises(SettingsError, match="PROVISIONING_MODE"):
        load_settings({**BASE, "PROVISIONING_MODE": "sometimes"})


def test_malformed_number_is_refused_with_its_name():
    with pytest.raises(SettingsError, match="SMTP_MX_PORT"):
        load_settings({**BASE, "SMTP_MX_PORT": "twenty-five"})


def test_defaults_are_synchronous_provisioning_and_secret_key_falls_back_to_encryption_key():
    settings = load_settings(BASE)
    assert settings.sync_provisioning
    assert settings.secret_key == KEY


def test_an_encryption_key_from_herokus_secret_generator_works():
    generated = secrets.token_hex(32)  # what app.json's "generator": "secret" makes
    settings = load_settings({**BASE, "ENCRYPTION_KEY": generated})
    box = SecretBox(settings.encryption_key)
    assert box.decrypt(box.encrypt("a secret")) == "a secret"
    assert SecretBox(generated.upper()).decrypt(box.encrypt("same key")) == "same key"


@pytest.mark.parametrize("bad", ["k", "0" * 63, "g" * 64, "not base64!" * 4, "YWJj"])
def test_an_unusable_encryption_key_is_refused_at_start(bad):
    with pytest.raises(SettingsError, match="ENCRYPTION_KEY"):
        load_settings({**BASE, "ENCRYPTION_KEY": bad})


@pytest.mark.parametrize("only", ["SMTP_TLS_CERT", "SMTP_TLS_KEY"])
def test_a_tls_certificate_without_its_key_or_the_reverse_is_refused(only):
    with pytest.raises(SettingsError, match="SMTP_TLS_CERT and SMTP_TLS_KEY"):
        load_settings({**BASE, only: "/etc/ssl/edge.pem"})


def test_old_encryption_keys_decrypt_beside_the_current_one_which_alone_encrypts():
    old, older = new_encryption_key(), secrets.token_hex(32)
    settings = load_settings({**BASE, "ENCRYPTION_KEYS_OLD": f" {old} ,, {older},{KEY}"})
    assert settings.encryption_keys_old == (old, older)  # blanks and the current key dropped
    box = box_for(settings)
    assert box.decrypt(SecretBox(old).encrypt("a")) == "a"
    assert box.decrypt(SecretBox(older).encrypt("b")) == "b"
    assert SecretBox(KEY).decrypt(box.encrypt("c")) == "c"


def test_an_unusable_old_encryption_key_is_refused_by_position_without_echoing_it():
    with pytest.raises(SettingsError, match="ENCRYPTION_KEYS_OLD: key 2 ") as refused:
        load_settings({**BASE, "ENCRYPTION_KEYS_OLD": f"{new_encryption_key()},not-a-key-at-all"})
    assert "not-a-key-at-all" not in str(refused.value)


def test_without_secret_key_the_old_encryption_keys_keep_sessions_valid():
    old = new_encryption_key()
    assert load_settings({**BASE, "ENCRYPTION_KEYS_OLD": old}).secret_key_fallbacks == (old,)
    own = load_settings({**BASE, "ENCRYPTION_KEYS_OLD": old, "SECRET_KEY": "s"})
    assert own.secret_key_fallbacks == ()

def test_smtp_session_limits_default_for_a_public_mx_and_are_read_from_the_environment():
    defaults = load_settings(BASE)
    assert (
        defaults.smtp_max_sessions_per_client,
        defaults.smtp_pre_mail_timeout,
        defaults.smtp_session_time_limit,
    ) == (25, 60.0, 1800.0)
    assert defaults.smtp_max_sessions_per_client < defaults.smtp_max_sessions
    assert defaults.smtp_pre_mail_timeout < defaults.smtp_command_timeout
    changed = load_settings(
        {
            **BASE,
            "SMTP_MAX_SESSIONS_PER_CLIENT": "200",
            "SMTP_PRE_MAIL_TIMEOUT": "30",
            "SMTP_SESSION_TIME_LIMIT": "600",
        }
    )
    assert (
        changed.smtp_max_sessions_per_client,
        changed.smtp_pre_mail_timeout,
        changed.smtp_session_time_limit,
    ) == (200, 30.0, 600.0)

def test_sweep_interval_defaults_to_a_minute_and_must_be_a_positive_number_of_seconds():
    assert load_settings(BASE).sweep_interval == 60
    assert load_settings({**BASE, "SWEEP_INTERVAL": "5"}).sweep_interval == 5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SettingsError, match="SWEEP_INTERVAL"):
            load_settings({**BASE, "SWEEP_INTERVAL": bad})


def test_the_inbound_mx_host_defaults_to_mx_of_the_inbound_domain_and_is_read_lower_cased():
    assert load_settings({**BASE, "INBOUND_DOMAIN": "in.example.net"}).inbound_mx_host == "mx.in.example.net"
    named = load_settings({**BASE, "INBOUND_MX_HOST": "Edge.Example.NET."})
    assert named.inbound_mx_host == "edge.example.net"

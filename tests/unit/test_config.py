"""Configuration from the environment: explicit casts, clear failures."""
import os
import stat

import pytest

from app.config import ConfigError, load_config


def config(tmp_path, **env):
    return load_config(str(tmp_path), {"JWT_SECRET_KEY": "k" * 40, **env})


def test_defaults_match_the_contract(tmp_path):
    c = config(tmp_path)
    assert (c["STREAMS_PER_USER"], c["STREAM_PING_SECONDS"], c["HISTORY_MAX_EVENTS"],
            c["HISTORY_MAX_SECONDS"]) == (20, 15.0, 1000, 86400)
    assert c["REDIS_URL"] is None and c["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert c["RATELIMIT_ENABLED"] is True


def test_postgres_urls_use_psycopg_3(tmp_path):
    c = config(tmp_path, DATABASE_URL="postgres://u@h/db")
    assert c["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("name,value", [("STREAMS_PER_USER", "many"), ("STREAMS_PER_USER", "0"),
                                        ("RATELIMIT_ENABLED", "maybe"),
                                        ("STREAM_PING_SECONDS", "-1")])
def test_bad_values_fail_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        config(tmp_path, **{name: value})


def test_a_secret_is_required_outside_development(tmp_path):
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        load_config(str(tmp_path), {})
    development = load_config(str(tmp_path), {"APP_ENV": "development"})
    assert len(development["JWT_SECRET_KEY"]) > 30
    assert load_config(str(tmp_path), {"APP_ENV": "development"})["JWT_SECRET_KEY"] == \
        development["JWT_SECRET_KEY"]


def test_origins_are_split_on_commas_and_spaces(tmp_path):
    assert config(tmp_path, ALLOWED_ORIGINS="https://a.example, https://b.example  x")[
        "ALLOWED_ORIGINS"] == ["https://a.example", "https://b.example", "x"]


def test_cookies_are_secure_outside_development_unless_the_operator_says(tmp_path):
    assert config(tmp_path)["COOKIE_SECURE"] is True
    assert config(tmp_path, COOKIE_SECURE="false")["COOKIE_SECURE"] is False
    assert config(tmp_path, APP_ENV="development")["COOKIE_SECURE"] is False
    assert config(tmp_path, APP_ENV="development", COOKIE_SECURE="true")["COOKIE_SECURE"] is True


def test_a_short_secret_is_refused_outside_development_saying_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"JWT_SECRET_KEY is 31 bytes; at least 32.*secrets"):
        load_config(str(tmp_path), {"JWT_SECRET_KEY": "s" * 31})
    assert load_config(str(tmp_path), {"JWT_SECRET_KEY": "s" * 32})["JWT_SECRET_KEY"] == "s" * 32
    # A developer's own short secret still runs in development.
    assert load_config(str(tmp_path), {"APP_ENV": "development", "JWT_SECRET_KEY": "dev"})


def test_the_development_secret_is_never_readable_by_others(tmp_path, monkeypatch):
    modes = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):
        # Every file the secret passes through is created with owner-only permissions.
        if flags & os.O_CREAT:
            modes.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    old_umask = os.umask(0)  # the mode alone must protect it, whatever the umask
    try:
        monkeypatch.setattr(os, "open", watching_open)
        secret = load_config(str(tmp_path), {"APP_ENV": "development"})["JWT_SECRET_KEY"]
    finally:
        os.umask(old_umask)
    path = tmp_path / "dev-jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert modes and all(mode & 0o077 == 0 for mode in modes)
    assert path.read_text() == secret and len(secret) >= 32
    assert [p.name for p in tmp_path.iterdir()] == ["dev-jwt-secret"]  # no temporary left


def test_the_outbox_fault_injection_is_refused_outside_development(tmp_path):
    with pytest.raises(ConfigError, match="OUTBOX_FAULT_PAUSE_MARKER"):
        config(tmp_path, OUTBOX_FAULT_PAUSE_MARKER="[stall]")
    assert config(tmp_path, APP_ENV="development", OUTBOX_FAULT_PAUSE_MARKER="[stall]")[
        "OUTBOX_FAULT_PAUSE_MARKER"] == "[stall]"
    assert config(tmp_path)["OUTBOX_FAULT_PAUSE_MARKER"] == ""

"""Configuration read from the environment, with explicit casts and visible defaults.

Every setting the contract names is a key here, so ``app.config`` shows what a running server
uses. Bad values fail at start-up with a sentence that says which variable is wrong.
"""
import os
import secrets
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: The shortest ``JWT_SECRET_KEY`` accepted outside development (RFC 7518 asks HS256 keys to be
#: at least as long as the hash: 256 bits).
MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """Raised when an environment variable is missing or cannot be cast."""


def env_str(env, name, default=None):
    """Return ``env[name]`` stripped, or *default* when unset or empty."""
    value = env.get(name, "").strip()
    return value or default


def env_int(env, name, default, minimum=None, maximum=None):
    """Return ``env[name]`` as an int within bounds, or *default*; raise on a bad value."""
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(env, name, default, minimum=0.0):
    """Return ``env[name]`` as a float of at least *minimum*, or *default*."""
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(env, name, default):
    """Return ``env[name]`` as a bool from a strict set of spellings, or *default*."""
    raw = env.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_list(env, name):
    """Return ``env[name]`` split on commas and whitespace, without empty items."""
    return [item for item in env.get(name, "").replace(",", " ").split() if item]


def _development_secret(instance_path):
    """Return a per-checkout secret for development, created once under ``instance/``."""
    return development_file(instance_path, "dev-jwt-secret", lambda: secrets.token_urlsafe(48))


def development_file(instance_path, name, make):
    """Return the text of ``instance/<name>``, written once with what *make()* returns.

    The file is readable by its owner only (0600) from the moment it exists: it is written
    under a temporary name created with that mode, then renamed into place, so no other user
    can read it and no reader sees it half-written.
    """
    path = Path(instance_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make())
            # A hard link, unlike a rename, never replaces: of two processes starting
            # together, the first link wins and both read the one secret.
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text().strip()


def load_config(instance_path, env=None):
    """Build the configuration mapping from the environment.

    :param instance_path: the app's instance folder (default SQLite file, development secret).
    :param env: a mapping to read instead of ``os.environ`` (tests).
    :raises ConfigError: for a bad value, or a missing or short (under 32 bytes)
        ``JWT_SECRET_KEY`` outside development.
    """
    env = os.environ if env is None else env
    development = env_str(env, "APP_ENV", "production") == "development"
    secret = env_str(env, "JWT_SECRET_KEY")
    if secret is None:
        if not development:
            raise ConfigError(
                "JWT_SECRET_KEY is not set. Set it to a long random string "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                "or set APP_ENV=development to use a generated one (make run does)."
            )
        secret = _development_secret(instance_path)
    elif len(secret.encode()) < MIN_SECRET_BYTES and not development:
        raise ConfigError(
            f"JWT_SECRET_KEY is {len(secret.encode())} bytes; at least {MIN_SECRET_BYTES} are "
            "required, as a shorter HMAC key can be guessed offline from any token. Set it to a "
            "long random string (python -c 'import secrets; print(secrets.token_urlsafe(48))').")
    database_url = env_str(env, "DATABASE_URL", f"sqlite:///{Path(instance_path) / 'feed.db'}")
    if env.get("OUTBOX_FAULT_PAUSE_MARKER") and not development:
        # Any user could hold a request for a minute by writing the marker.
        raise ConfigError("OUTBOX_FAULT_PAUSE_MARKER is for tests: set it only with "
                          "APP_ENV=development")
    return {
        "APP_ENV": "development" if development else "production",
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": _normalise_database_url(database_url),
        "DB_POOL_SIZE": env_int(env, "DB_POOL_SIZE", 10, minimum=1),
        "DB_MAX_OVERFLOW": env_int(env, "DB_MAX_OVERFLOW", 20, minimum=0),
        "DB_POOL_TIMEOUT": env_float(env, "DB_POOL_TIMEOUT", 10.0),
        "REDIS_URL": env_str(env, "REDIS_URL"),
        "REDIS_PREFIX": env_str(env, "REDIS_PREFIX", "rt"),
        "REDIS_CLUSTER": _tristate(env, "REDIS_CLUSTER"),
        "REDIS_HEALTH_SECONDS": env_float(env, "REDIS_HEALTH_SECONDS", 5.0, minimum=0.1),
        "JWT_SECRET_KEY": secret,
        "ACCESS_TOKEN_SECONDS": env_int(env, "ACCESS_TOKEN_SECONDS", 900, minimum=5),
        "REFRESH_TOKEN_SECONDS": env_int(env, "REFRESH_TOKEN_SECONDS", 30 * 86400, minimum=60),
        # Secure (and __Host-/__Secure- names) except on `make run`'s plain-HTTP server.
        "COOKIE_SECURE": env_bool(env, "COOKIE_SECURE", not development),
        "ALLOWED_ORIGINS": env_list(env, "ALLOWED_ORIGINS"),
        # The auth cookie from an allowed origin (Access-Control-Allow-Credentials): off.
        "CORS_ALLOW_CREDENTIALS": env_bool(env, "CORS_ALLOW_CREDENTIALS", False),
        "CORS_MAX_AGE": env_int(env, "CORS_MAX_AGE", 600, minimum=0),
        "PROXY_COUNT": env_int(env, "PROXY_COUNT", 0, minimum=0, maximum=5),
        "STREAMS_PER_USER": env_int(env, "STREAMS_PER_USER", 20, minimum=1),
        "STREAM_PING_SECONDS": env_float(env, "STREAM_PING_SECONDS", 15.0, minimum=0.05),
        "STREAM_RETRY_MS": env_int(env, "STREAM_RETRY_MS", 2000, minimum=0),
        "STREAM_QUEUE_MAX_EVENTS": env_int(env, "STREAM_QUEUE_MAX_EVENTS", 256, minimum=1),
        "STREAM_QUEUE_MAX_BYTES": env_int(env, "STREAM_QUEUE_MAX_BYTES", 1024 * 1024, minimum=1024),
        "STREAM_MAX_LAG_SECONDS": env_float(env, "STREAM_MAX_LAG_SECONDS", 10.0, minimum=0.1),
        "STREAM_SEND_BUFFER_BYTES": env_int(env, "STREAM_SEND_BUFFER_BYTES", 128 * 1024,
                                            minimum=4096),
        "HISTORY_MAX_EVENTS": env_int(env, "HISTORY_MAX_EVENTS", 1000, minimum=1),
        "HISTORY_MAX_SECONDS": env_int(env, "HISTORY_MAX_SECONDS", 86400, minimum=1),
        # A post's reaction and comment counts reach feeds at most once per this many seconds
        # (the post's own channel gets every change); 0: every change.
        "FEED_COUNTS_SECONDS": env_float(env, "FEED_COUNTS_SECONDS", 1.0, minimum=0.0),
        # From this many followers an author's events go once to the large-author channel
        # instead of to every follower's feed; back below half of it, to the feeds again.
        "LARGE_AUTHOR_FOLLOWERS": env_int(env, "LARGE_AUTHOR_FOLLOWERS", 5000, minimum=2),
        # An event not published this many seconds after its commit is taken over by the
        # outbox's relay (its process was stopped in between); the relay looks this often.
        "OUTBOX_LEASE_SECONDS": env_float(env, "OUTBOX_LEASE_SECONDS", 30.0, minimum=0.5),
        "OUTBOX_RELAY_SECONDS": env_float(env, "OUTBOX_RELAY_SECONDS", 5.0, minimum=0.1),
        # Fault injection for the tests that kill a worker mid-publish (development only): an
        # event whose JSON holds this text waits a minute between its commit and its publish.
        "OUTBOX_FAULT_PAUSE_MARKER": env.get("OUTBOX_FAULT_PAUSE_MARKER", ""),
        "LONGPOLL_DEFAULT_SECONDS": env_float(env, "LONGPOLL_DEFAULT_SECONDS", 25.0),
        "LONGPOLL_MAX_SECONDS": env_float(env, "LONGPOLL_MAX_SECONDS", 55.0),
        "WS_MAX_MESSAGE_BYTES": env_int(env, "WS_MAX_MESSAGE_BYTES", 64 * 1024, minimum=128),
        "WS_MESSAGES_PER_SECOND": env_float(env, "WS_MESSAGES_PER_SECOND", 20.0, minimum=0.1),
        "WS_MESSAGE_BURST": env_int(env, "WS_MESSAGE_BURST", 40, minimum=1),
        "WS_COMPRESSION": env_bool(env, "WS_COMPRESSION", True),
        "RATELIMIT_ENABLED": env_bool(env, "RATELIMIT_ENABLED", True),
        "RATELIMIT_WRITES": env_str(env, "RATELIMIT_WRITES", "30/second;1200/minute"),
        "RATELIMIT_TYPING": env_str(env, "RATELIMIT_TYPING", "10/second;300/minute"),
        "RATELIMIT_AUTH": env_str(env, "RATELIMIT_AUTH", "10/second;300/minute"),
        "RATELIMIT_REFRESH": env_str(env, "RATELIMIT_REFRESH", "30/minute;300/hour"),
        "RATELIMIT_TICKETS": env_str(env, "RATELIMIT_TICKETS", "2/second;120/minute"),
        "RATELIMIT_FOLLOWS": env_str(env, "RATELIMIT_FOLLOWS", "2/second;60/minute"),
        "RATELIMIT_LONGPOLL": env_str(env, "RATELIMIT_LONGPOLL", "20/second;1200/minute"),
        "LOGIN_BACKOFF_AFTER": env_int(env, "LOGIN_BACKOFF_AFTER", 5, minimum=1),
        "LOGIN_BACKOFF_MAX_SECONDS": env_int(env, "LOGIN_BACKOFF_MAX_SECONDS", 900, minimum=1),
        "RATELIMIT_STREAM_OPENS": env_str(env, "RATELIMIT_STREAM_OPENS", "50/second;1500/minute"),
        "TYPING_THROTTLE": env_str(env, "TYPING_THROTTLE", "1/2second"),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        "PASSWORD_HASH_TIME_COST": env_int(env, "PASSWORD_HASH_TIME_COST", 3, minimum=1),
        "PASSWORD_HASH_MEMORY_KIB": env_int(env, "PASSWORD_HASH_MEMORY_KIB", 65536, minimum=32),
        "PASSWORD_HASH_CONCURRENCY": env_int(env, "PASSWORD_HASH_CONCURRENCY", 2, minimum=1),
        # Web Push (app/push): unset outside development, pushes are off; in development a
        # key pair is made once under instance/.
        "VAPID_PRIVATE_KEY": env_str(env, "VAPID_PRIVATE_KEY"),
        "VAPID_PUBLIC_KEY": env_str(env, "VAPID_PUBLIC_KEY"),
        "VAPID_SUBJECT": env_str(env, "VAPID_SUBJECT"),
        "PUSH_TTL_SECONDS": env_int(env, "PUSH_TTL_SECONDS", 86400, minimum=0),
        "PUSH_SENDERS": env_int(env, "PUSH_SENDERS", 4, minimum=1),
        # Endpoints on loopback or private addresses, over plain HTTP: for tests only.
        "PUSH_ALLOW_LOCAL_ENDPOINTS": env_bool(env, "PUSH_ALLOW_LOCAL_ENDPOINTS", False),
    }


def _tristate(env, name):
    """Return None for ``auto`` (or unset), else the variable as a bool."""
    if env_str(env, name, "auto").lower() == "auto":
        return None
    return env_bool(env, name, None)


def _normalise_database_url(url):
    """Point ``postgresql://`` URLs at psycopg 3, which cooperates with gevent."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def engine_options(config):
    """Return engine options for the configured database: a sized pool for PostgreSQL, a busy
    timeout for SQLite."""
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Writers wait for each other instead of failing with "database is locked".
        return {"connect_args": {"timeout": 15}}
    return {"pool_size": config["DB_POOL_SIZE"], "max_overflow": config["DB_MAX_OVERFLOW"],
            "pool_timeout": config["DB_POOL_TIMEOUT"], "pool_pre_ping": True}

"""Back-off per username after failed sign-ins, from any address, in process and in Redis."""
import time

import pytest

from app.auth import passwords
from tests.support.pageforms import ORIGIN


@pytest.fixture
def database_url(sqlite_url):
    """SQLite only: the back-off is kept in the process or in Redis, never in the database, and
    its real delays (1, 2, 4 s) would double the suite's wait on a second database."""
    return sqlite_url


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def app_config(request):
    config = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "1000/minute",
              "LOGIN_BACKOFF_AFTER": 2, "LOGIN_BACKOFF_MAX_SECONDS": 900}
    if request.param == "redis":
        config.update(REDIS_URL=request.getfixturevalue("redis_url"),
                      REDIS_PREFIX=request.getfixturevalue("redis_prefix"))
    return config


@pytest.fixture
def hashes(monkeypatch):
    """Count the password hashes and verifications done."""
    done = []
    real = passwords._off_loop

    def counting(function, *args):
        done.append(function)
        return real(function, *args)

    monkeypatch.setattr(passwords, "_off_loop", counting)
    return done


def login(client, username, password, address):
    return client.post("/api/auth/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def wait_until_allowed(client, username, password, address, timeout=10):
    """Retry while the username backs off (429); return the first other answer."""
    deadline = time.monotonic() + timeout
    while True:
        response = login(client, username, password, address)
        if response.status_code != 429 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_failures_from_many_addresses_back_the_username_off(api, client, hashes, username):
    api.register("alice")
    assert login(client, username, "wrong-pass", "10.0.0.1").status_code == 401
    assert login(client, username, "wrong-pass", "10.0.0.2").status_code == 401
    hashed = len(hashes)
    # From a third address, even with the right password: refused, before any hash, and
    # alike whether the account exists or not.
    refused = login(client, username, "password123", "10.0.0.3")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(hashes) == hashed
    # Other usernames are not held back.
    assert login(client, "someone_else", "wrong-pass", "10.0.0.3").status_code == 401


def test_the_delay_grows_with_each_failure(api, client):
    api.register("alice")
    for address in ("10.0.0.1", "10.0.0.2"):
        login(client, "alice", "wrong-pass", address)
    waits = []
    for _ in range(3):
        refused = login(client, "alice", "wrong-pass", "10.0.0.3")
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        assert wait_until_allowed(client, "alice", "wrong-pass", "10.0.0.3").status_code == 401
    assert waits[0] < waits[2]  # 1 s, 2 s, 4 s


def test_a_successful_sign_in_clears_the_back_off(api, client):
    api.register("alice")
    for address in ("10.0.0.1", "10.0.0.2"):
        login(client, "alice", "wrong-pass", address)
    assert login(client, "alice", "password123", "10.0.0.3").status_code == 429
    assert wait_until_allowed(client, "alice", "password123", "10.0.0.3").status_code == 200
    # Counted from zero again: one typo is not refused.
    assert login(client, "alice", "wrong-pass", "10.0.0.1").status_code == 401
    assert login(client, "alice", "password123", "10.0.0.1").status_code == 200


def test_the_page_form_backs_off_too(api, client):
    api.register("alice")
    for address in ("10.0.0.1", "10.0.0.2"):
        login(client, "alice", "wrong-pass", address)
    refused = client.post("/login", data={"username": "alice", "password": "password123"},
                          headers={"Origin": ORIGIN})
    assert refused.status_code == 429 and "Retry-After" in refused.headers

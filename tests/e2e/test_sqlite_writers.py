"""SQLite under gevent: concurrent writes of one worker wait for each other, cooperatively."""
import gevent
import pytest

from tests.support.clients import RestUser

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.mark.timeout(120)
def test_concurrent_writes_that_yield_mid_transaction_never_find_the_database_locked(deploy):
    # An Idempotency-Key claims its row in the request's transaction before the route runs,
    # and the rate limit then asks Redis: the request yields holding SQLite's write lock. A
    # second greenlet's write used to wait for that lock in C, holding the event loop, until
    # SQLite gave up after its busy timeout: 500 "database is locked".
    [server] = deploy(workers=1, RATELIMIT_ENABLED="true", RATELIMIT_WRITES="1000/second")
    alice = RestUser(server.url, "alice")

    def write(key):
        return alice.call("POST", "/api/posts", json={"content": key}, timeout=60,
                          headers={"Idempotency-Key": key}).status_code

    for round_ in range(3):
        calls = [gevent.spawn(write, f"key-{round_}-{n}") for n in range(20)]
        gevent.joinall(calls, raise_error=True)
        assert [call.value for call in calls] == [201] * 20
    assert "database is locked" not in server.log()

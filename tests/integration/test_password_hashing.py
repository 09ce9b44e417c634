"""Password hashing runs off the gevent event loop: other greenlets carry on during a sign-in."""
import subprocess
import sys

import gevent
from argon2 import PasswordHasher, extract_parameters
from gevent import monkey

from app.auth import passwords
from tests.conftest import ROOT

# An unpatched lock: waiting on it really blocks the thread (and, on the event loop, the loop).
real_lock = monkey.get_original("_thread", "allocate_lock")


class WatchedHasher(PasswordHasher):
    """A cheap hasher that, before each hash or verification, waits for the ticker greenlet.

    The ticker can only run while the event loop is free: if hashing held the loop, the wait
    would time out and record False.
    """

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=32)
        self.waiting = None
        self.loop_ran = []

    def _watch(self):
        self.waiting = real_lock()
        self.waiting.acquire()
        self.loop_ran.append(self.waiting.acquire(timeout=5))  # released by the ticker
        self.waiting = None

    def hash(self, password, **kwargs):
        self._watch()
        return super().hash(password, **kwargs)

    def verify(self, hash, password):
        self._watch()
        return super().verify(hash, password)


def _tick(hasher):
    while True:
        gevent.sleep(0.001)
        waiting = hasher.waiting
        if waiting is not None and waiting.locked():
            try:
                waiting.release()
            except RuntimeError:  # released just now by an earlier tick
                pass


def test_sign_ins_hash_while_other_greenlets_keep_running(app, client, monkeypatch):
    hasher = WatchedHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    ticker = gevent.spawn(_tick, hasher)
    try:
        account = {"username": "alice", "password": "password123"}
        assert client.post("/api/auth/register", json=account).status_code == 201
        assert client.post("/api/auth/login", json=account).status_code == 200
        unknown = {"username": "nobody", "password": "password123"}
        assert client.post("/api/auth/login", json=unknown).status_code == 401
    finally:
        ticker.kill()
    # Register, the right password, and the unknown user's decoy check: each let the loop run.
    assert hasher.loop_ran == [True, True, True]


def test_hashing_works_without_gevent():
    """The CLI and a plain threaded server hash in the calling thread."""
    script = ("from gevent import monkey; from app.auth import passwords as p\n"
              "assert not monkey.is_module_patched('threading')\n"
              "p.configure(1, 32, 2)\n"
              "h = p.hash_password('password123')\n"
              "assert p.verify_password(h, 'password123') == (True, None)\n"
              "assert p.verify_password(h, 'wrong') == (False, None)\n")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


def test_the_decoy_hash_costs_what_a_real_one_of_the_same_hasher_costs():
    """An unknown username is checked against a hash of the configured cost: the stored one
    at the default cost (no hash at boot), a fresh one for any other."""
    default = PasswordHasher()
    decoy = passwords._dummy_for(default)
    assert decoy == passwords._DEFAULT_DUMMY
    assert extract_parameters(decoy) == extract_parameters(default.hash("x"))
    assert default.verify(decoy, "not a real password")
    cheap = PasswordHasher(time_cost=1, memory_cost=32)
    decoy = passwords._dummy_for(cheap)
    assert extract_parameters(decoy) == extract_parameters(cheap.hash("x"))
    assert cheap.verify(decoy, "not a real password")

"""Argon2id password hashing, off the event loop.

A hash at the production cost (64 MiB, t=3) takes about 0.1 s of CPU. Under gevent, running it
in the request's greenlet would freeze every stream of the worker for that long, so hashing and
verification run in a small pool of real threads (argon2-cffi releases the GIL) while the event
loop carries on. The pool's size bounds how many hashes run at once, and so their memory (64 MiB
each); further sign-ins wait for a free thread. Without gevent (the CLI, a plain threaded
server) the calling thread hashes, behind a semaphore of the same size.
"""
import os
import threading

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from gevent import monkey

# Verified against when the username is unknown, so a login takes as long either way. This one
# has the default cost (a hash of "not a real password"): computing it would cost every worker
# a tenth of a second of CPU as it boots. Another cost gets its own (_dummy_for).
_DEFAULT_DUMMY = ("$argon2id$v=19$m=65536,t=3,p=4$s/K77ybBjYu9mQGNM3rUaQ$"
                  "tR/q+tc7sGsjDIsALDX45XXV8cAVD31IfEf6VpIOdjo")


def _dummy_for(hasher):
    """Return a hash that costs *hasher* as much to verify as a real one."""
    params = extract_parameters(_DEFAULT_DUMMY)
    if (params.time_cost, params.memory_cost, params.parallelism, params.hash_len,
            params.salt_len) == (hasher.time_cost, hasher.memory_cost, hasher.parallelism,
                                 hasher.hash_len, hasher.salt_len):
        return _DEFAULT_DUMMY
    return hasher.hash("not a real password")


_hasher = PasswordHasher()
_dummy_hash = _dummy_for(_hasher)
_concurrency = 2
_slots = threading.BoundedSemaphore(_concurrency)
_pool = None
_pool_pid = None


def configure(time_cost, memory_kib, concurrency):
    """Set Argon2's cost and how many hashes may run at once (``PASSWORD_HASH_TIME_COST``,
    ``PASSWORD_HASH_MEMORY_KIB``, ``PASSWORD_HASH_CONCURRENCY``).

    Existing hashes keep verifying whatever the cost; they are rehashed at the next sign-in.
    """
    global _hasher, _dummy_hash, _concurrency, _slots, _pool
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _dummy_hash = _dummy_for(_hasher)
    if concurrency != _concurrency:
        _concurrency = concurrency
        _slots = threading.BoundedSemaphore(concurrency)
        _pool = None


def _off_loop(function, *args):
    """Return ``function(*args)``, run in the hashing pool under gevent, else in this thread."""
    global _pool, _pool_pid
    if not monkey.is_module_patched("threading"):
        with _slots:
            return function(*args)
    from gevent.threadpool import ThreadPool

    # One pool per process: a forked worker must not use its parent's threads.
    if _pool is None or _pool_pid != os.getpid():
        _pool, _pool_pid = ThreadPool(_concurrency), os.getpid()
    return _pool.apply(function, args)


def hash_password(password):
    """Return the Argon2id hash of *password*."""
    return _off_loop(_hasher.hash, password)


def _verify(hasher, stored, password):
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, hasher.hash(password) if hasher.check_needs_rehash(stored) else None


def verify_password(stored, password):
    """Return ``(matches, new_hash)``: *new_hash* is set when the cost changed since *stored*."""
    return _off_loop(_verify, _hasher, stored, password)


def burn_password_check(password):
    """Spend the time of a password check when there is no user to check against."""
    _off_loop(_verify, _hasher, _dummy_hash, password)

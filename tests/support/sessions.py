"""The HTTP session of every test client: it never sends on a connection the server may be closing.

gunicorn closes a kept-alive connection that stays idle for ``keepalive`` seconds, and it cannot
say so in advance (no ``Connection: close``: there is no response to carry it). A request sent
as that timer fires meets a closing socket and fails before any answer (``RemoteDisconnected``,
``ConnectionResetError``), and the client cannot tell whether the server acted on it: a POST
may not be sent again. HTTP leaves this race to the client (RFC 9112, section 9.6), so the pool
here takes a connection again only while it has been idle for less than :data:`MAX_IDLE`, well
under the servers' keep-alive, and opens a new one otherwise. The timer may fire early, too: a
busy gevent worker starts it from a loop time that can lag by one turn of its event loop.

Nothing is retried: a connection the server really drops (a worker killed, a request it could
not answer) still fails the test that met it.
"""
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

SERVER_KEEPALIVE = 1
"""The idle keep-alive (s) of the test servers' gunicorn: ``GUNICORN_KEEPALIVE`` in servers.py."""

MAX_IDLE = SERVER_KEEPALIVE / 2
"""A pooled connection idle longer than this (s) is closed rather than sent on."""


class _FreshPool:
    """A urllib3 pool that stamps each connection it gets back and drops it once it is stale."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        released = getattr(conn, "released_at", None)
        if released is not None and time.monotonic() - released > MAX_IDLE:
            # urllib3 reconnects a closed connection on its next request, as it does for one it
            # finds dropped by the server.
            conn.close()
        conn.released_at = None
        return conn

    def _put_conn(self, conn):
        if conn is not None:
            conn.released_at = time.monotonic()
        super()._put_conn(conn)


class _FreshHTTPPool(_FreshPool, HTTPConnectionPool):
    pass


class _FreshHTTPSPool(_FreshPool, HTTPSConnectionPool):
    pass


class FreshConnectionAdapter(HTTPAdapter):
    """A requests adapter whose pools never reuse a connection idle longer than MAX_IDLE."""

    def init_poolmanager(self, *args, **kwargs):
        """Create the pool manager with the pools that drop stale connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _FreshHTTPPool,
                                                   "https": _FreshHTTPSPool}


def session():
    """Return a ``requests.Session`` that is safe from the keep-alive race (see the module)."""
    http = requests.Session()
    adapter = FreshConnectionAdapter()
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http

"""No token or ticket in the logs: a scenario that puts secrets where they most likely leak.

``?token=`` and ``?ticket=`` on every transport, a refused token, a logout; then the access and
application logs of its server are scanned. Every other chaos module's server logs are scanned
the same way when the module ends (the ``deployment`` fixture), whatever order modules run in.
"""
import pytest
import requests

from tests.chaos.harness import SECRETS, record, remember, scan_logs
from tests.support.clients import RestUser
from tests.support.rawhttp import Conn, request_bytes

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]


def secrets_in_urls(server):
    alice = remember(RestUser(server.url, "leaky"))
    for path in ("/stream/feed", "/poll/feed"):
        ticket = alice.call("POST", "/api/auth/stream-ticket").json()["ticket"]
        SECRETS.add(ticket)
        for query in (f"token={alice.token}", f"ticket={ticket}", f"x=1&token={alice.token}&y=2",
                      f"token={alice.token}broken"):
            response = requests.get(f"{server.url}{path}?{query}&timeout=0", stream=True,
                                    timeout=10)
            response.close()
    ticket = alice.call("POST", "/api/auth/stream-ticket").json()["ticket"]
    SECRETS.add(ticket)
    for query in (f"token={alice.token}", f"ticket={ticket}"):
        conn = Conn("127.0.0.1", server.port)
        conn.send(request_bytes("GET", f"/ws/feed?{query}", f"127.0.0.1:{server.port}",
                                {"Upgrade": "websocket", "Connection": "Upgrade",
                                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                 "Sec-WebSocket-Version": "13"}))
        conn.read_head()
        conn.close()
    alice.call("POST", "/api/auth/logout")
    requests.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {alice.token}"},
                 timeout=10)


def test_no_token_or_ticket_reaches_any_log(deployment, redis_url):
    [server] = deployment.start(workers=2, redis_url=redis_url)
    secrets_in_urls(server)
    server.stop()  # flush every access-log line
    scanned = scan_logs([server.log_path])
    leaks = scanned["leaks"]
    figures = {"server logs scanned": scanned["files"], "lines": scanned["lines"],
               "secrets handed out": len(SECRETS), "JWTs or tickets found": len(leaks)}
    record("secrets in logs", "test_no_token_or_ticket_reaches_any_log",
           "the access and application logs after ?token=/?ticket= on SSE, long-poll and "
           "WebSocket, refused tokens and logouts (every chaos module's logs are scanned too)",
           figures, "no JWT, no ticket (token=/ticket= appear as ***)", not leaks)
    assert not leaks, leaks[:10]

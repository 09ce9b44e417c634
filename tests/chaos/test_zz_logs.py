"""Item 11: no token or ticket in any log the chaos suite's servers wrote.

Runs last in tests/chaos (file order). It adds a scenario of its own that puts secrets where
they are most likely to leak — ``?token=`` and ``?ticket=`` on every transport, a refused token,
a logout — then scans the access and application logs of every server this run started.
"""
import re

import pytest
import requests

from tests.chaos.harness import SECRETS, SERVER_LOGS, record, remember
from tests.support.clients import RestUser
from tests.support.load import Conn, request_bytes

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
QUERY_SECRET = re.compile(r"(?:token|ticket)=(?!\*\*\*)[^&\s\"]+")


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
    leaks, lines, files = [], 0, 0
    for path in SERVER_LOGS:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        files += 1
        lines += text.count("\n")
        leaks += [(path.name, m.group(0)[:40]) for m in JWT.finditer(text)]
        leaks += [(path.name, m.group(0)[:40]) for m in QUERY_SECRET.finditer(text)]
        leaks += [(path.name, secret[:12]) for secret in SECRETS if secret and secret in text]
    figures = {"server logs scanned": files, "lines": lines, "secrets handed out": len(SECRETS),
               "JWTs or tickets found": len(leaks)}
    record(11, "test_no_token_or_ticket_reaches_any_log",
           "every access and application log of every server the chaos run started, after "
           "?token=/?ticket= on SSE, long-poll and WebSocket, refused tokens and logouts", figures,
           "no JWT, no ticket (token=/ticket= appear as ***)", not leaks)
    assert not leaks, leaks[:10]

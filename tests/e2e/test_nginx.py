"""deploy/nginx.conf in front of two gunicorn servers: SSE, WebSocket, long-poll, resume, HTTP/2."""
import shutil
import subprocess
import time
import uuid

import pytest

from tests.conftest import missing_service, postgres_database
from tests.support.clients import SUBSCRIBERS, RestUser
from tests.support.nginx import Nginx
from tests.support.servers import Server, migrate

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture(scope="module")
def proxied(pytestconfig, tmp_path_factory, redis_url):
    """nginx with deploy/nginx.conf in front of two servers of two workers each."""
    if not (shutil.which("nginx") or shutil.which("/usr/sbin/nginx")):
        missing_service(pytestconfig, "nginx is not installed")
    directory = tmp_path_factory.mktemp("nginx")
    database = postgres_database(pytestconfig)
    url = next(database)
    migrate(url)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "PROXY_COUNT": "1",
           "REDIS_PREFIX": f"ngx{uuid.uuid4().hex[:8]}"}
    servers = [Server(env, workers=2, log_dir=directory).start() for _ in range(2)]
    nginx = Nginx(servers, directory).start()
    yield nginx, servers
    nginx.stop()
    for server in servers:
        server.stop()
    next(database, None)


def new_user(url, name):
    """Register a user with a name unique in the shared deployment."""
    return RestUser(url, f"{name}_{uuid.uuid4().hex[:6]}")


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
def test_every_transport_and_resume_through_nginx(proxied, transport):
    nginx, _ = proxied
    alice = new_user(nginx.url, "alice")
    first = SUBSCRIBERS[transport](nginx.url, "feed", alice.token)
    if transport != "poll":
        first.wait_type("connection_established")
    sent = time.time()
    alice.post("through the proxy")
    event = first.wait_type("new_post")[0]
    received_at = [t for t, e in first.events if e is event][0]
    assert received_at - sent < 1.0, "the proxy must not buffer the stream"
    last_id = first.last_id
    first.close()
    missed = [alice.post(f"missed {i}")["id"] for i in range(3)]
    resumed = SUBSCRIBERS[transport](nginx.url, "feed", alice.token, last_event_id=last_id)
    got = resumed.wait_type("new_post", count=3)
    assert [e["post"]["id"] for e in got] == missed
    resumed.close()


def test_websocket_origin_check_sees_the_browser_host_through_nginx(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.url, "alice")
    accepted = SUBSCRIBERS["ws"](nginx.url, "feed", alice.token, origin=nginx.url)
    assert accepted.status == 101
    accepted.wait_type("connection_established")
    accepted.send({"type": "ping"})
    accepted.wait_type("pong")
    accepted.close()
    refused = SUBSCRIBERS["ws"](nginx.url, "feed", alice.token, origin="http://evil.example")
    assert refused.status == 403


def test_browsers_get_http2_over_tls(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.url, "alice")
    result = subprocess.run(
        ["curl", "-sk", "--http2", "-N", "--max-time", "3", "-o", "-", "-w", "\nHTTP/%{http_version}",
         "-H", f"Authorization: Bearer {alice.token}", f"{nginx.https_url}/stream/feed"],
        capture_output=True, text=True, timeout=20)
    assert "event: connection_established" in result.stdout
    assert result.stdout.rstrip().endswith("HTTP/2")


def test_the_nginx_access_log_has_no_tokens(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.url, "alice")
    reader = SUBSCRIBERS["sse"](nginx.url, "feed", alice.token)
    reader.wait_type("connection_established")
    reader.close()
    subprocess.run(["curl", "-s", "--max-time", "1", f"{nginx.url}/stream/feed?token={alice.token}"],
                   capture_output=True, timeout=10)
    time.sleep(0.3)
    log = (nginx.directory / "feed-access.log").read_text()
    assert "/stream/feed" in log and alice.token not in log

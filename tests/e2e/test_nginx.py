"""deploy/nginx.conf in front of two gunicorn servers: SSE, WebSocket, long-poll, resume, HTTP/2,
HTTPS only, idle upstream connections, operators' routes, and logs without tokens."""
import json
import shutil
import subprocess
import time
import types
import uuid

import gevent
import pytest
import requests

from tests.conftest import missing_service, postgres_database
from tests.support.clients import SUBSCRIBERS, RestUser
from tests.support.nginx import Nginx
from tests.support.servers import Server, free_port, migrate
from tests.support.sessions import session

# gunicorn.conf.py's idle keep-alive, the one deploy/nginx.conf is written against.
GUNICORN_KEEPALIVE = 5

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
           "REDIS_PREFIX": f"ngx{uuid.uuid4().hex[:8]}",
           "GUNICORN_KEEPALIVE": str(GUNICORN_KEEPALIVE)}
    servers = [Server(env, workers=2, log_dir=directory).start() for _ in range(2)]
    nginx = Nginx(servers, directory).start()
    with nginx.trusted():
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
    alice = new_user(nginx.https_url, "alice")
    first = SUBSCRIBERS[transport](nginx.https_url, "feed", alice.token)
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
    resumed = SUBSCRIBERS[transport](nginx.https_url, "feed", alice.token, last_event_id=last_id)
    got = resumed.wait_type("new_post", count=3)
    assert [e["post"]["id"] for e in got] == missed
    resumed.close()


def test_websocket_origin_check_sees_the_browser_host_through_nginx(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.https_url, "alice")
    accepted = SUBSCRIBERS["ws"](nginx.https_url, "feed", alice.token, origin=nginx.https_url)
    assert accepted.status == 101
    accepted.wait_type("connection_established")
    accepted.send({"type": "ping"})
    accepted.wait_type("pong")
    accepted.close()
    refused = SUBSCRIBERS["ws"](nginx.https_url, "feed", alice.token, origin="http://evil.example")
    assert refused.status == 403


def test_browsers_get_http2_over_tls(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.https_url, "alice")
    result = subprocess.run(
        ["curl", "-sk", "--http2", "-N", "--max-time", "3", "-o", "-", "-w", "\nHTTP/%{http_version}",
         "-H", f"Authorization: Bearer {alice.token}", f"{nginx.https_url}/stream/feed"],
        capture_output=True, text=True, timeout=20)
    assert "event: connection_established" in result.stdout
    assert result.stdout.rstrip().endswith("HTTP/2")


def test_the_nginx_access_log_has_no_tokens(proxied):
    nginx, _ = proxied
    alice = new_user(nginx.https_url, "alice")
    reader = SUBSCRIBERS["sse"](nginx.https_url, "feed", alice.token)
    reader.wait_type("connection_established")
    reader.close()
    subprocess.run(["curl", "-s", "--cacert", str(nginx.cert), "--max-time", "1",
                    f"{nginx.https_url}/stream/feed?token={alice.token}"],
                   capture_output=True, timeout=10)
    time.sleep(0.3)
    log = (nginx.directory / "feed-access.log").read_text()
    assert "/stream/feed" in log and alice.token not in log


def test_plain_http_only_redirects_to_https_and_https_answers_carry_hsts(proxied):
    nginx, _ = proxied
    for method in ("GET", "POST"):
        response = requests.request(method, f"{nginx.http_url}/api/posts?limit=5&after=x%20y",
                                    allow_redirects=False, timeout=10)
        assert response.status_code == 308
        assert response.headers["Location"] == f"{nginx.https_url}/api/posts?limit=5&after=x%20y"
    alice = new_user(nginx.https_url, "alice")
    for response in (alice.call("GET", "/api/posts"),
                     alice.call("POST", "/api/posts", json={}),  # an error answer too
                     requests.get(f"{nginx.https_url}/metrics", timeout=10)):
        hsts = response.headers["Strict-Transport-Security"]
        assert hsts.startswith("max-age=") and int(hsts.split(";")[0][8:]) >= 86400
        assert "includeSubDomains" in hsts


def test_health_and_metrics_are_not_public_through_nginx(proxied):
    nginx, servers = proxied

    def curl(path, source):
        # A client from 127.0.0.2 is "another host" to nginx: $remote_addr is not loopback's.
        result = subprocess.run(["curl", "-s", "--cacert", str(nginx.cert), "--path-as-is",
                                 "--interface", source, "-w", "\n%{http_code}",
                                 nginx.https_url + path], capture_output=True, text=True,
                                timeout=20)
        body, _, status = result.stdout.rpartition("\n")
        return int(status), body

    for path in ("/healthz", "/healthz/", "/metrics", "/metrics/", "//metrics", "/%6Detrics",
                 "/healthz?token=x", "/metrics?ticket=x"):
        status, body = curl(path, "127.0.0.2")
        assert status == 404, path
        assert json.loads(body)["error"]["code"] == "not_found"
        assert "database" not in body and "# HELP" not in body
    # This host (an operator's smoke check) reads them; so do the load balancer and Prometheus,
    # on each server's own address.
    assert curl("/healthz", "127.0.0.1")[0] == 200
    assert "# HELP" in curl("/metrics", "127.0.0.1")[1]
    assert requests.get(f"{servers[0].url}/healthz", timeout=10).status_code == 200


def test_writes_after_an_idle_across_gunicorns_keepalive_never_get_a_502(proxied):
    """nginx must drop an idle upstream connection before gunicorn closes it, or a write sent
    on it as gunicorn's timer fires fails before any answer: nginx answers 502."""
    nginx, _ = proxied
    author = new_user(nginx.https_url, "idle")
    count = 50
    statuses = []

    def write_idle_write(idle):
        http = session()  # its own connection to nginx, so nginx holds many upstream ones
        headers = {"Authorization": f"Bearer {author.token}"}
        for content in ("before", "after"):
            statuses.append(http.post(f"{nginx.https_url}/api/posts", json={"content": content},
                                      headers=headers, timeout=30).status_code)
            if content == "before":
                gevent.sleep(idle)
        http.close()

    # The upstream connections all go idle at the first write; the second writes step across
    # gunicorn's keep-alive, 5 ms apart (its timer fires late or early on a busy worker).
    # A 502 is rare (one to six in these rounds, with the old config): hence several rounds.
    rounds = 6
    for _ in range(rounds):
        gevent.joinall([gevent.spawn(write_idle_write, GUNICORN_KEEPALIVE - 0.05 + 0.25 * i / count)
                        for i in range(count)], raise_error=True)
    assert statuses.count(201) == len(statuses) == rounds * 2 * count, sorted(set(statuses))


def test_upstream_errors_of_requests_with_a_token_keep_it_out_of_the_logs(tmp_path, pytestconfig):
    if not (shutil.which("nginx") or shutil.which("/usr/sbin/nginx")):
        missing_service(pytestconfig, "nginx is not installed")
    # An upstream that refuses every connection: each request is an upstream error.
    nginx = Nginx([types.SimpleNamespace(port=free_port())], tmp_path).start()
    try:
        secrets = [f"SECRET{i}{uuid.uuid4().hex}" for i in range(5)]
        paths = [f"/stream/feed?token={secrets[0]}", f"/ws/feed/?token={secrets[1]}",
                 f"/poll/feed?timeout=0&cursor=1-1&ticket={secrets[2]}",
                 f"/api/posts?Token={secrets[3]}", f"/stream/feed?ticket={secrets[4]}"]
        clean = ["/stream/feed", "/poll/feed?timeout=0&cursor=clean-1"]
        for path in paths + clean:
            response = requests.get(nginx.https_url + path, verify=str(nginx.cert), timeout=10)
            assert response.status_code == 502, path
    finally:
        nginx.stop()
    logs = {name: (tmp_path / name).read_text()
            for name in ("feed-error.log", "feed-access.log", "nginx.out")}
    for name, text in logs.items():
        assert not [s for s in secrets if s in text], name
    # Token-free upstream errors are still in the error log, request line and all.
    assert 'request: "GET /stream/feed HTTP/1.1"' in logs["feed-error.log"]
    assert "/poll/feed?timeout=0&cursor=clean-1" in logs["feed-error.log"]
    # Every request, with a token or not, is in the access log with its status.
    access = logs["feed-access.log"].splitlines()
    assert len([line for line in access if '" 502 ' in line]) == len(paths + clean)

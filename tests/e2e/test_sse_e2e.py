"""SSE through real gunicorn workers and a real Redis."""
import re
import socket
import time

import gevent
import pytest
import requests

from tests.support.clients import RestUser, SSEReader
from tests.support.procs import worker_of_peers

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def stream_workers(server, readers):
    """Return the pids of the workers serving *readers*' streams."""
    owners = worker_of_peers(server.port)
    return {owners.get(reader.local_port) for reader in readers} - {None}


def followers_on_every_worker(server, author):
    """Return feed readers of followers of *author*, open until every worker serves some.

    The kernel hands each connection to whichever worker accepts first, and one worker may
    take many in a row.
    """
    readers = []
    for batch in range(10):
        for i in range(6):
            follower = RestUser(server.url, f"follower{batch}_{i}")
            follower.follow(author)
            readers.append(SSEReader(f"{server.url}/stream/feed", token=follower.token))
        for reader in readers:
            reader.wait_type("connection_established")
        if stream_workers(server, readers) == set(server.worker_pids()):
            return readers
    raise AssertionError(f"{len(readers)} streams, all on one worker")


def test_two_workers_every_stream_gets_every_event(deploy):
    [server] = deploy(workers=2)
    author = RestUser(server.url, "author")
    readers = followers_on_every_worker(server, author)
    posts = [author.post(f"post {i}")["id"] for i in range(5)]
    for reader in readers:
        got = reader.wait_type("new_post", count=5)
        assert [e["post"]["id"] for e in got] == posts
        reader.close()


def test_a_client_resumes_on_another_server_without_loss(deploy):
    first, second = deploy(servers=2, workers=2, database="postgres")
    alice = RestUser(first.url, "alice")
    reader = SSEReader(f"{first.url}/stream/feed", token=alice.token)
    alice.post("seen")
    reader.wait_type("new_post")
    last_id = reader.last_id
    reader.close()
    missed = [alice.call("POST", "/api/posts", base_url=second.url,
                         json={"content": f"missed {i}"}).json()["id"] for i in range(3)]
    resumed = SSEReader(f"{second.url}/stream/feed", token=alice.token, last_event_id=last_id)
    got = resumed.wait_type("new_post", count=3)
    assert [e["post"]["id"] for e in got] == missed
    live = alice.post("live on the first server")["id"]
    assert resumed.wait_type("new_post", count=4)[-1]["post"]["id"] == live
    resumed.close()


def test_logout_closes_streams_on_every_worker(deploy):
    [server] = deploy(workers=2)
    alice = RestUser(server.url, "alice")
    readers = [SSEReader(f"{server.url}/stream/feed", token=alice.token) for _ in range(6)]
    for reader in readers:
        reader.wait_type("connection_established")
    assert alice.call("POST", "/api/auth/logout").status_code == 200
    started = time.monotonic()
    for reader in readers:
        reader.wait_type("token_expired", timeout=5)
        reader.wait_for(lambda r: r.ended, timeout=5)
    assert time.monotonic() - started < 2.5


def test_pings_keep_an_idle_stream_alive(deploy):
    [server] = deploy(workers=1, STREAM_PING_SECONDS=0.3)
    alice = RestUser(server.url, "alice")
    reader = SSEReader(f"{server.url}/stream/feed", token=alice.token)
    reader.wait_type("ping", count=3, timeout=5)
    reader.close()


def test_tokens_in_urls_never_reach_the_access_log(deploy):
    [server] = deploy(workers=1)
    alice = RestUser(server.url, "alice")
    ticket = alice.call("POST", "/api/auth/stream-ticket").json()["ticket"]
    for query in (f"token={alice.token}", f"ticket={ticket}", f"x=1&token={alice.token}"):
        reader = SSEReader(f"{server.url}/stream/feed?{query}")
        assert reader.status == 200
        reader.wait_type("connection_established")
        reader.close()
    requests.get(f"{server.url}/stream/feed?token={alice.token}x", timeout=5)
    # A stream's access-log line is written when the server notices the client left.
    deadline = time.monotonic() + 10
    while server.log().count("GET /stream/feed?") < 4 and time.monotonic() < deadline:
        gevent.sleep(0.1)
    log = server.log()
    assert "/stream/feed?token=***" in log and "ticket=***" in log
    assert alice.token not in log and ticket not in log
    assert alice.token.split(".")[1] not in log


def test_a_client_that_never_reads_is_cut_and_the_others_keep_up(deploy):
    [server] = deploy(workers=1, STREAM_QUEUE_MAX_EVENTS=50)
    author = RestUser(server.url, "author")
    post = author.post("hot thread")
    healthy = [SSEReader(f"{server.url}/stream/post/{post['id']}", token=RestUser(
        server.url, f"reader{i}").token) for i in range(5)]
    slow_user = RestUser(server.url, "sloth")
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(f"GET /stream/post/{post['id']} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {slow_user.token}\r\n\r\n".encode())
    for reader in healthy:
        reader.wait_type("connection_established")
    big = "x" * 1990
    for i in range(400):
        response = author.call("POST", f"/api/posts/{post['id']}/comments",
                               json={"content": f"{i} {big}"})
        assert response.status_code == 201
    for reader in healthy:
        comments = reader.wait_type("new_comment", count=400, timeout=20)
        assert [c["comment"]["content"].split()[0] for c in comments] == [str(i) for i in range(400)]
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    assert re.search(r'feed_slow_consumers_dropped_total\{transport="sse"\} 1\.0', metrics), metrics
    stuck.close()


def test_several_workers_without_redis_refuse_to_start(tmp_path):
    from tests.support.servers import Server

    server = Server({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, workers=2,
                    log_dir=tmp_path)
    server.env.pop("REDIS_URL", None)
    with pytest.raises(RuntimeError, match="exited"):
        server.start(timeout=15)
    assert "without REDIS_URL" in server.log()


def test_metrics_are_summed_over_workers(deploy):
    [server] = deploy(workers=2)
    author = RestUser(server.url, "author")
    readers = followers_on_every_worker(server, author)
    author.post("counted")
    for reader in readers:
        reader.wait_type("new_post")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        delivered = re.search(r'feed_events_delivered_total\{transport="sse"\} (\S+)', text)
        if delivered and float(delivered.group(1)) >= len(readers):
            break
        gevent.sleep(0.2)
    streams = len(readers)
    assert re.search(rf'feed_open_connections\{{kind="feed",transport="sse"\}} {streams}\.0',
                     text), text
    assert float(delivered.group(1)) == streams
    # One channel per follower; the author's own feed, which nobody opened, is cold.
    assert re.search(rf'feed_events_published_total\{{type="new_post"\}} {streams}\.0', text)
    assert re.search(r'feed_events_cold_total\{type="new_post"\} 1\.0', text), text
    assert "feed_delivery_latency_seconds_bucket" in text
    for reader in readers:
        reader.close()

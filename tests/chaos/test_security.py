"""Origins and CORS, CSRF and GET writes, expiry and logout,
spoofing, and SSE injection — against real servers (two gevent workers, Redis, SQLite)."""
import base64
import json
import re
import sqlite3
import time
from urllib.parse import urlsplit

import gevent
import jwt as pyjwt
import pytest
import requests

from feedclient import parse_sse
from tests.chaos.harness import SECRETS, record, remember
from tests.e2e.test_websocket import hostile_origins
from tests.support.clients import RestUser
from tests.support.load import PollClient, SSEClient, WSClient
from tests.support.procs import clients_by_worker
from tests.support.rawhttp import Conn, request_bytes
from tests.support.sessions import session
from tests.support.waits import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def server(deployment, redis_url):
    [server] = deployment.start(workers=2, redis_url=redis_url, ALLOWED_ORIGINS=ALLOWED,
                                STREAMS_PER_USER=50, WS_MESSAGES_PER_SECOND=100)
    return server


@pytest.fixture(scope="module")
def redis_client(redis_url):
    import redis

    return redis.Redis.from_url(redis_url)


def base(server):
    return ("127.0.0.1", server.port)


def user(server, name):
    return remember(RestUser(server.url, name))


# -- origins and CORS -------------------------------------------------------------------


def test_hostile_origins_get_403_before_the_upgrade_and_no_subscription(server, redis_client):
    victim = user(server, "origin_victim")
    prefix = server.env["REDIS_PREFIX"]
    origins = hostile_origins(server.port)
    assert len(origins) == 20
    refused = {}
    for origin in origins:
        for path in ("feed", f"post/{victim.post('x')['id']}"):
            client = WSClient(base(server), path, victim.token, origin=origin).start()
            client.wait_established(timeout=5)
            refused[(origin, path)] = (client.status, client.up)
            client.stop()
    slots = redis_client.zcard(f"{prefix}:streams:{{{victim.id}}}")
    channels = redis_client.pubsub_channels(f"{prefix}:*{victim.id}*")
    # The server's own origin and the allowed one are accepted: the refusals are about Origin.
    accepted = []
    for origin in (f"http://127.0.0.1:{server.port}", ALLOWED, None):
        client = WSClient(base(server), "feed", victim.token, origin=origin).start()
        accepted.append(client.wait_established(timeout=5) is not None)
        client.stop()
    # CORS: no route answers a foreign Origin with permissive headers, preflight included.
    cors = {}
    headers = {"Origin": "http://evil.com", "Authorization": f"Bearer {victim.token}"}
    for method, path in (("GET", "/stream/feed"), ("GET", "/poll/feed?timeout=0"),
                         ("GET", "/api/me"), ("OPTIONS", "/stream/feed"),
                         ("OPTIONS", "/api/posts")):
        response = requests.request(method, server.url + path, stream=True, timeout=5,
                                    headers={**headers, "Access-Control-Request-Method": "POST"})
        cors[(method, path)] = sorted(h for h in response.headers
                                      if h.lower().startswith("access-control-"))
        response.close()
    statuses = {status for status, _ in refused.values()}
    figures = {"hostile origins": len(origins), "handshakes refused 403": sum(
        1 for status, up in refused.values() if status == 403 and not up),
        "handshakes": len(refused), "stream slots taken": slots,
        "pub/sub channels of the victim": len(channels),
        "own and allowed origins accepted": f"{sum(accepted)}/3",
        "Access-Control-* headers seen": sum(len(v) for v in cors.values())}
    ok = (statuses == {403} and not any(up for _, up in refused.values()) and slots == 0
          and not channels and all(accepted) and not any(cors.values()))
    record("origins", "test_hostile_origins_get_403_before_the_upgrade_and_no_subscription",
           "20 hostile Origin variants on feed and post sockets; CORS on SSE, poll, API", figures,
           "403 before the upgrade, no subscription; no permissive CORS", ok)
    assert statuses == {403}, refused
    assert slots == 0 and not channels
    assert all(accepted)
    assert not any(cors.values()), cors


# -- CSRF and GET writes -------------------------------------------------------------


def url_rules():
    """Return ``[(rule, methods, endpoint, websocket)]`` from the app's own URL map."""
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "REDIS_URL": None})
    return [(r.rule, sorted(r.methods - {"HEAD", "OPTIONS"}), r.endpoint,
             getattr(r, "websocket", False)) for r in app.url_map.iter_rules()]


class State:
    """Everything a write could change: every table of the database, and Redis's revocations
    and tickets."""

    def __init__(self, server, redis_client):
        self.path = urlsplit(server.env["DATABASE_URL"]).path
        self.redis = redis_client
        self.prefix = server.env["REDIS_PREFIX"]

    def snapshot(self):
        # The outbox is delivery bookkeeping, emptied off the request a moment after a write's
        # publish: wait for it to drain and leave it out, or an earlier, legitimate write's row
        # going away would look like a change made by whatever request came next.
        wait_until(lambda: self._outbox_rows() == 0, timeout=10, message="the outbox never drained")
        with sqlite3.connect(self.path) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name NOT IN ('alembic_version', 'outbox')")]
            data = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
        for kind in ("revoked", "ticket"):
            data[kind] = sorted(self.redis.scan_iter(f"{self.prefix}:{kind}:*"))
        return data

    def _outbox_rows(self):
        with sqlite3.connect(self.path) as conn:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def cookie_session(server, username):
    """Sign in through the page form; return a requests session holding the JWT cookies."""
    http = session()
    # The Origin a browser sends: a sign-in form post that says nothing of where it comes
    # from must carry the form's token.
    response = http.post(f"{server.url}/login", data={"username": username,
                                                      "password": "password123"},
                         headers={"Origin": server.url}, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text[:300]
    assert "access_token_cookie" in http.cookies and "csrf_access_token" in http.cookies
    SECRETS.update(c.value for c in http.cookies if "token" in c.name)
    return http


def fill(rule, values):
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule)


UNAUTHENTICATED = {"auth.login", "auth.register", "pages.login", "pages.register"}


def test_every_cookie_authenticated_write_without_csrf_is_refused_and_no_get_writes(
        server, redis_client):
    victim, other = user(server, "csrf_victim"), user(server, "csrf_other")
    post = victim.post("victim's post")
    comment = victim.call("POST", f"/api/posts/{post['id']}/comments",
                          json={"content": "victim's comment"}).json()
    values = {"post_id": post["id"], "comment_id": comment["id"], "username": other.username,
              "filename": "js/main.js"}
    http = cookie_session(server, victim.username)
    state = State(server, redis_client)
    rules = url_rules()
    refused, accepted = [], []
    for rule, methods, endpoint, _ in rules:
        for method in methods:
            if method == "GET" or endpoint in UNAUTHENTICATED:
                continue
            before = state.snapshot()
            url = server.url + fill(rule, values)
            body = {"content": "written by a forged request", "type": "like"}
            if endpoint.startswith("pages."):
                response = http.request(method, url, data=body, allow_redirects=False, timeout=10)
            else:
                response = http.request(method, url, json=body, allow_redirects=False, timeout=10)
            changed = state.snapshot() != before
            (accepted if changed or response.status_code < 400 else refused).append(
                (method, rule, response.status_code, changed))
    # Positive controls: with the CSRF token the same cookie session can write.
    token = http.cookies["csrf_access_token"]
    with_header = http.post(f"{server.url}/api/posts", json={"content": "with csrf"},
                            headers={"X-CSRF-TOKEN": token}, timeout=10)
    with_form = http.post(f"{server.url}/compose", data={"content": "form", "csrf_token": token},
                          allow_redirects=False, timeout=10)
    # GET writes: every GET route, signed in by cookie and by token, changes nothing.
    get_writes, gets = [], 0
    for rule, methods, endpoint, websocket in rules:
        if "GET" not in methods:
            continue
        path = fill(rule, values)
        before = state.snapshot()
        if websocket:
            client = WSClient(base(server), path[len("/ws/"):], victim.token).start()
            client.wait_established(timeout=5)
            client.stop()
        else:
            query = "?timeout=0" if rule.startswith("/poll/") else ""
            response = http.get(server.url + path + query, stream=True, timeout=10,
                                headers={"Authorization": f"Bearer {victim.token}"})
            response.raw.read(1, decode_content=False)
            response.close()
        gets += 1
        if state.snapshot() != before:
            get_writes.append(rule)
    figures = {"unsafe routes × methods": len(refused) + len(accepted),
               "refused without CSRF": len(refused), "accepted without CSRF": len(accepted),
               "statuses": sorted({status for _, _, status, _ in refused}),
               "with the token (API, form)": f"{with_header.status_code}, {with_form.status_code}",
               "GET routes": gets, "GET routes that wrote": len(get_writes)}
    ok = (not accepted and with_header.status_code == 201 and with_form.status_code in (302, 303)
          and not get_writes)
    record("CSRF", "test_every_cookie_authenticated_write_without_csrf_is_refused_and_no_get_writes",
           "every unsafe route of app.url_map with the session cookie and no CSRF token; every "
           "GET route; database and Redis compared before and after each", figures,
           "every cookie write without CSRF refused; no GET writes", ok)
    assert not accepted, accepted
    assert with_header.status_code == 201 and with_form.status_code in (302, 303)
    assert not get_writes, get_writes


# -- expiry and logout ---------------------------------------------------------------


def test_streams_end_at_token_expiry_on_every_transport(deployment, redis_url):
    [short] = deployment.start(workers=2, redis_url=redis_url, ACCESS_TOKEN_SECONDS=5,
                               STREAM_PING_SECONDS=30)
    alice = user(short, "expiring")
    exp = pyjwt.decode(alice.token, options={"verify_signature": False})["exp"]
    clients = [SSEClient(base(short), "feed", alice.token), WSClient(base(short), "feed", alice.token),
               PollClient(base(short), "feed", alice.token, wait=55)]
    for client in clients:
        client.start()
    for client in clients:
        assert client.wait_established(timeout=5) is not None
    wait_until(lambda: all(c.ended_at for c in clients), timeout=70, interval=0.1)
    late = {c.transport: round(c.ended_at - exp, 2) for c in clients}
    told = {c.transport: c.stats.types.get("token_expired", 0) for c in clients}
    ok = all(v <= 30 for v in late.values()) and all(told.values())
    record("expiry and logout", "test_streams_end_at_token_expiry_on_every_transport",
           "SSE, WebSocket and a 55 s long-poll opened with a token that expires in 5 s",
           {"ended after exp s": late, "token_expired sent": told}, "end ≤ 30 s after exp", ok)
    assert all(told.values()), told
    assert all(v <= 30 for v in late.values()), late


def test_logout_closes_the_users_streams_on_every_worker_within_2_s(server):
    alice = user(server, "logout_everywhere")
    clients = ([SSEClient(base(server), "feed", alice.token) for _ in range(4)]
               + [WSClient(base(server), "feed", alice.token) for _ in range(4)]
               + [PollClient(base(server), "feed", alice.token, wait=30) for _ in range(2)])
    workers = set()
    for _ in range(6):
        # Which worker accepts a connection is up to the kernel; one idle worker may take them
        # all. Open more until both hold some (at most 20, the user's stream limit).
        for client in clients:
            if client.opened_at is None:
                client.start()
        for client in clients:
            assert client.wait_established(timeout=5) is not None
        gevent.sleep(0.3)  # the long-polls are waiting
        workers = set(clients_by_worker(server, [c for c in clients if c.transport != "poll"]))
        if len(workers) == 2:
            break
        clients += [SSEClient(base(server), "feed", alice.token),
                    WSClient(base(server), "feed", alice.token)]
    assert len(workers) == 2, "streams on both workers"
    out = time.time()
    assert alice.call("POST", "/api/auth/logout").status_code == 200
    wait_until(lambda: all(c.ended_at or c.stats.types.get("token_expired") for c in clients),
               timeout=10, interval=0.02)
    closed = [max(c.ended_at or 0, min((at for kind, at in c.last_messages
                                         if kind == "token_expired"), default=0)) - out
              for c in clients]
    told = sum(1 for c in clients if c.stats.types.get("token_expired"))
    figures = {"streams": len(clients), "workers": len(workers),
               "closed after logout s (max)": round(max(closed), 3),
               "told token_expired": f"{told}/{len(clients)}"}
    ok = max(closed) <= 2 and told == len(clients)
    record("expiry and logout", "test_logout_closes_the_users_streams_on_every_worker_within_2_s",
           "logout with SSE, WebSocket and 2 waiting long-polls over both workers", figures,
           "every stream closed ≤ 2 s", ok)
    for client in clients:
        client.stop()
    assert told == len(clients) and max(closed) <= 2, figures


# -- spoofing ----------------------------------------------------------------------


def forged_tokens(victim_token, impostor_id):
    """Tokens that claim to be *impostor_id*: wrong key, no signature, edited payload."""
    claims = pyjwt.decode(victim_token, options={"verify_signature": False})
    claims["sub"] = impostor_id
    wrong_key = pyjwt.encode(claims, "not-the-server-secret-" + "z" * 30, algorithm="HS256")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned = f"{header}.{body}."
    head, _, signature = victim_token.split(".")
    edited = f"{head}.{body}.{signature}"
    return {"wrong key": wrong_key, "alg none": unsigned, "edited payload": edited}


def test_no_request_can_act_as_another_user(server):
    alice, bob, carol = user(server, "spoof_alice"), user(server, "spoof_bob"), user(server, "spoof_carol")
    carol.follow(alice)
    post = alice.post("alice's thread")
    bob_json = {"id": bob.id, "username": bob.username, "display_name": bob.username}
    watch_feed = SSEClient(base(server), "feed", carol.token, keep_payloads=True).start()
    watch_post = SSEClient(base(server), f"post/{post['id']}", carol.token,
                           keep_payloads=True).start()
    typer = WSClient(base(server), f"post/{post['id']}", alice.token).start()
    for client in (watch_feed, watch_post, typer):
        assert client.wait_established() is not None
    spoof = {"author": bob_json, "author_id": bob.id, "user_id": bob.id, "user": bob_json,
             "sender": bob.id}
    answers = [
        alice.call("POST", "/api/posts", json={"content": "posted as bob?", **spoof}),
        alice.call("POST", f"/api/posts/{post['id']}/comments",
                   json={"content": "commented as bob?", **spoof}),
        alice.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "love", **spoof}),
        alice.call("POST", f"/api/posts/{post['id']}/typing", json=spoof),
    ]
    comment_id = answers[1].json()["id"]
    answers.append(alice.call("PUT", f"/api/comments/{comment_id}/like", json=spoof))
    typer.send_json({"type": "typing", **spoof})
    bob_edit = bob.call("PATCH", f"/api/posts/{post['id']}", json={"content": "bob was here"})
    forged = {name: requests.post(f"{server.url}/api/posts", json={"content": "forged"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code
              for name, token in forged_tokens(alice.token, bob.id).items()}
    forged_streams = {name: requests.get(f"{server.url}/stream/feed?token={token}", timeout=10,
                                         stream=True).status_code
                      for name, token in forged_tokens(alice.token, bob.id).items()}
    gevent.sleep(1.5)
    events = [obj for _, obj in watch_feed.stats.payloads + watch_post.stats.payloads]
    for client in (watch_feed, watch_post, typer):
        client.stop()
    who = [event[key]["author"]["id"] for event in events for key in ("post", "comment")
           if key in event]
    who += [event["user"]["id"] for event in watch_post.typing]
    bob_view = bob.call("GET", f"/api/posts/{post['id']}").json()
    figures = {"spoofed writes answered": [a.status_code for a in answers],
               "events seen": len(events), "events naming bob": who.count(bob.id),
               "bob's edit of alice's post": bob_edit.status_code,
               "bob's reaction after": bob_view["my_reaction"],
               "forged tokens (REST)": forged, "forged tokens (stream)": forged_streams}
    ok = (bob.id not in who and who and bob_edit.status_code == 403
          and bob_view["my_reaction"] is None and set(forged.values()) == {401}
          and set(forged_streams.values()) == {401})
    record("spoofing", "test_no_request_can_act_as_another_user",
           "REST bodies and a typing frame naming another user; forged, unsigned and edited "
           "JWTs; editing another's post", figures, "the event is always from the sender", ok)
    assert who and bob.id not in who, events
    assert bob_edit.status_code == 403 and bob_view["my_reaction"] is None
    assert set(forged.values()) == {401} and set(forged_streams.values()) == {401}, figures


def test_typing_names_the_sender_whatever_the_frame_or_body_says(server):
    alice, bob, carol = user(server, "typing_alice"), user(server, "typing_bob"), user(server, "typing_carol")
    post = alice.post("typing thread")
    watcher = WSClient(base(server), f"post/{post['id']}", carol.token).start()
    typer = WSClient(base(server), f"post/{post['id']}", alice.token).start()
    for client in (watcher, typer):
        assert client.wait_established() is not None
    bob_json = {"id": bob.id, "username": bob.username, "display_name": "Bob"}
    typer.send_json({"type": "typing", "user": bob_json, "user_id": bob.id})
    gevent.sleep(2.1)  # the typing throttle is one announcement per user and post per 2 s
    assert alice.call("POST", f"/api/posts/{post['id']}/typing",
                      json={"user": bob_json, "user_id": bob.id}).status_code == 202
    wait_until(lambda: len(watcher_typing(watcher)) >= 2, timeout=10)
    users = watcher_typing(watcher)
    watcher.stop()
    typer.stop()
    record("spoofing", "test_typing_names_the_sender_whatever_the_frame_or_body_says",
           "a WebSocket typing frame and a REST typing body naming another user",
           {"typing events": len(users), "naming the sender": users.count(alice.id)},
           "typing always names the sender", set(users) == {alice.id})
    assert set(users) == {alice.id}, users


def watcher_typing(client):
    return [obj["user"]["id"] for obj in client.typing]


def read_chunks(conn, into):
    """Append every chunk of a chunked response to *into* until the connection ends."""
    while True:
        chunk = conn.read_chunk()
        if not chunk:
            return
        into.append(chunk)


# -- SSE injection ---------------------------------------------------------------------

NASTY = ["line\rbreak", "line\nbreak", "crlf\r\nbreak", "sep\u2028arator\u2029para",
         "\n\nevent: post_deleted\ndata: {\"post_id\": \"x\"}\n\n", "data: fake\n\nid: 999",
         "retry: 1\n\n: comment\n", "\r\n\r\nevent: comment_deleted\r\n", "tab\tand \"quotes\" \\"]


def test_sse_injection_in_bodies_yields_exactly_one_event_each(server):
    alice, carol = user(server, "inject_alice"), user(server, "inject_carol")
    carol.follow(alice)
    thread = alice.post("injection thread")
    conn = Conn("127.0.0.1", server.port)
    conn.send(request_bytes("GET", "/stream/feed", f"127.0.0.1:{server.port}",
                            {"Authorization": f"Bearer {carol.token}"}))
    status, headers = conn.read_head()
    assert status == 200
    raw = []
    reader = gevent.spawn(read_chunks, conn, raw)
    comments_sse = SSEClient(base(server), f"post/{thread['id']}", carol.token,
                             keep_payloads=True).start()
    ws = WSClient(base(server), "feed", carol.token, keep_payloads=True).start()
    assert comments_sse.wait_established() and ws.wait_established()
    gevent.sleep(0.3)
    posted, commented = [], []
    for content in NASTY + ["nul\x00byte"]:
        posted.append((content, alice.call("POST", "/api/posts", json={"content": content})))
        commented.append((content, alice.call("POST", f"/api/posts/{thread['id']}/comments",
                                              json={"content": content})))
    accepted_posts = [c for c, r in posted if r.status_code == 201]
    accepted_comments = [c for c, r in commented if r.status_code == 201]
    wait_until(lambda: len(comments_sse.comment_ids) >= len(accepted_comments)
               and len(ws.post_ids) >= len(accepted_posts), timeout=10)
    gevent.sleep(0.5)
    reader.kill()
    conn.close()
    # feedclient's parser reads a stream as a browser does: lines end at CRLF, LF or CR.
    events = [(e.event, e.data) for e in parse_sse(b"".join(raw))]
    new_posts = [json.loads(data) for kind, data in events if kind == "new_post"]
    # The feed also gets the thread's conflated comment count, a real event: anything else on
    # it (post_deleted, comment_deleted, an unnamed event) would have been injected.
    counts = [json.loads(data) for kind, data in events if kind == "comment_count"]
    others = [kind for kind, data in events if kind not in ("new_post", "comment_count",
                                                            "connection_established", "ping")]
    others += [count for count in counts if count["post_id"] != thread["id"]]
    seen_posts = [e["post"]["content"] for e in new_posts]
    seen_comments = [obj["comment"]["content"] for _, obj in comments_sse.stats.payloads
                     if obj["type"] == "new_comment"]
    ws_posts = [obj["post"]["content"] for _, obj in ws.stats.payloads if obj["type"] == "new_post"]
    comments_sse.stop()
    ws.stop()
    nul = {"post": posted[-1][1].status_code, "comment": commented[-1][1].status_code}
    figures = {"hostile bodies": len(NASTY), "posts accepted": len(accepted_posts),
               "new_post events (spec parser)": len(new_posts),
               "other events injected": len(others),
               "post data equal": seen_posts == accepted_posts,
               "comment data equal (SSE)": seen_comments == accepted_comments,
               "post data equal (WS)": ws_posts == accepted_posts,
               "NUL body answered": nul}
    ok = (seen_posts == accepted_posts == NASTY and seen_comments == accepted_comments == NASTY
          and ws_posts == NASTY and not others and set(nul.values()) == {422})
    record("SSE injection", "test_sse_injection_in_bodies_yields_exactly_one_event_each",
           "post and comment bodies with CR, LF, CRLF, U+2028/9, fake event:/data:/id:/retry: "
           "lines, and NUL", figures,
           "exactly one event each, data equal after a JSON round trip (NUL: refused 422)", ok)
    assert not others, others
    assert seen_posts == NASTY and seen_comments == NASTY and ws_posts == NASTY
    assert set(nul.values()) == {422}, nul

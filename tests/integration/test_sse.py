"""Server-Sent Events over the test client and the in-process broker."""
import pytest

from tests.support.clients import foreign_event_ids
from tests.support.streams import open_stream


@pytest.fixture
def streams():
    opened = []

    def track(stream):
        opened.append(stream)
        return stream

    yield track
    for stream in opened:
        stream.close()


def test_headers_retry_hint_and_connection_established_first(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    assert stream.status == 200
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert stream.response.headers["X-Accel-Buffering"] == "no"
    [event] = stream.next_events()
    assert event["event"] == "connection_established" and "id" not in event
    assert event["data"]["channel"] == f"feed:{alice.id}"
    assert stream.raw.startswith(b"retry: ")


def test_a_post_reaches_the_author_and_followers_feeds_only(client, api, streams):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    bob.follow(alice)
    feeds = {u.username: streams(open_stream(client, "/stream/feed", headers=u.headers))
             for u in (alice, bob, carol)}
    for stream in feeds.values():
        stream.next_events()
    post = alice.post("hi all")
    for name in ("alice", "bob"):
        event = feeds[name].until("new_post")
        assert event["data"]["post"]["id"] == post["id"]
        assert event["data"]["id"] == event["id"] and isinstance(event["data"]["ts"], int)
        assert "my_reaction" not in event["data"]["post"]
    carol_post = carol.post("only mine")
    assert feeds["carol"].until("new_post")["data"]["post"]["id"] == carol_post["id"]


def test_framing_is_id_event_data_blank_line(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    stream.next_events()
    alice.post("line one\nline two\r\n\nevent: post_deleted\u2028")
    chunk_start = len(stream.raw)
    event = stream.until("new_post")
    block = stream.raw[chunk_start:].decode()
    lines = block.split("\n")
    assert lines[0] == f"id: {event['id']}"
    assert lines[1] == "event: new_post"
    assert lines[2].startswith("data: {") and lines[3] == ""
    assert event["data"]["post"]["content"] == "line one\nline two\r\n\nevent: post_deleted\u2028"


def test_post_channel_carries_comments_likes_reactions_edits_and_typing(client, api, streams):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post("discuss")
    stream = streams(open_stream(client, f"/stream/post/{post['id']}", headers=bob.headers))
    stream.next_events()
    comment = bob.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "nice"}).get_json()
    assert stream.until("new_comment")["data"]["comment"]["id"] == comment["id"]
    bob.call("PUT", f"/api/comments/{comment['id']}/like")
    assert stream.until("comment_like")["data"]["like_count"] == 1
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "love"})
    assert stream.until("post_reaction")["data"]["reaction_data"]["counts"]["love"] == 1
    alice.call("PATCH", f"/api/posts/{post['id']}", json={"content": "edited"})
    assert stream.until("post_updated")["data"]["post"]["content"] == "edited"
    alice.call("POST", f"/api/posts/{post['id']}/typing")
    typing = stream.until("typing")
    assert "id" not in typing and typing["data"]["user"]["username"] == "alice"
    bob.call("DELETE", f"/api/comments/{comment['id']}")
    assert stream.until("comment_deleted")["data"]["comment_id"] == comment["id"]
    alice.call("DELETE", f"/api/posts/{post['id']}")
    assert stream.until("post_deleted")["data"]["post_id"] == post["id"]


@pytest.mark.parametrize("how", ["header", "query"])
def test_resume_from_last_event_id_without_gap_or_duplicate(client, api, streams, how):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    stream.next_events()
    alice.post("one")
    last_id = stream.until("new_post")["id"]
    stream.close()
    missed = [alice.post(f"missed {i}")["id"] for i in range(3)]
    if how == "header":
        resumed = streams(open_stream(client, "/stream/feed",
                                      headers={**alice.headers, "Last-Event-ID": last_id}))
    else:
        resumed = streams(open_stream(client, f"/stream/feed?last_event_id={last_id}",
                                      headers=alice.headers))
    events = resumed.next_events()
    assert [e["event"] for e in events] == ["connection_established"] + ["new_post"] * 3
    assert [e["data"]["post"]["id"] for e in events[1:]] == missed
    live = alice.post("live")["id"]
    assert resumed.until("new_post")["data"]["post"]["id"] == live


def test_an_unknown_last_event_id_gets_resync_required(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed",
                                 headers={**alice.headers, "Last-Event-ID": "nope-12"}))
    assert [e["event"] for e in stream.next_events()] == ["connection_established",
                                                          "resync_required"]


def test_ping_arrives_within_the_ping_interval(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    stream.next_events()
    ping = stream.until("ping", timeout=2)
    assert isinstance(ping["data"]["timestamp"], int)


def test_streams_need_credentials(client, api):
    response = client.get("/stream/feed")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_missing"
    response = client.get("/stream/feed?token=not-a-jwt")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_invalid"


def test_token_and_single_use_ticket_in_the_query(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, f"/stream/feed?token={alice.token}"))
    assert stream.status == 200
    ticket = alice.call("POST", "/api/auth/stream-ticket").get_json()
    assert ticket["expires_in"] == 30
    assert streams(open_stream(client, f"/stream/feed?ticket={ticket['ticket']}")).status == 200
    again = client.get(f"/stream/feed?ticket={ticket['ticket']}")
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "token_invalid"


def test_query_tokens_are_refused_on_rest_routes(client, api):
    alice = api.user("alice")
    assert client.get(f"/api/me?token={alice.token}").status_code == 401


def test_unknown_post_is_404(client, api):
    alice = api.user("alice")
    for post_id in ("00000000-0000-0000-0000-000000000000", "nope"):
        response = client.get(f"/stream/post/{post_id}", headers=alice.headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


@pytest.fixture
def app_config():
    return {"STREAMS_PER_USER": 2}


def test_per_user_stream_limit_is_429_and_closing_frees_a_slot(client, api, streams):
    alice = api.user("alice")
    first = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    streams(open_stream(client, "/stream/feed", headers=alice.headers))
    refused = client.get("/stream/feed", headers=alice.headers)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    first.close()
    assert streams(open_stream(client, "/stream/feed", headers=alice.headers)).status == 200


def test_a_reused_refresh_token_ends_the_sessions_streams(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    stream.next_events()
    assert client.post("/api/auth/refresh",
                       headers={"Authorization": f"Bearer {alice.refresh_token}"}).status_code == 200
    reused = client.post("/api/auth/refresh",
                         headers={"Authorization": f"Bearer {alice.refresh_token}"})
    assert reused.status_code == 401
    stream.until("token_expired")
    with pytest.raises(StopIteration):
        stream.next_events()


def test_logout_ends_the_stream_with_token_expired(client, api, streams):
    alice = api.user("alice")
    stream = streams(open_stream(client, "/stream/feed", headers=alice.headers))
    stream.next_events()
    assert alice.call("POST", "/api/auth/logout").status_code == 200
    stream.until("token_expired")
    with pytest.raises(StopIteration):
        stream.next_events()


def test_a_resume_id_that_is_not_ours_starts_afresh_with_resync(client, api, streams):
    alice = api.user("alice")
    for event_id in foreign_event_ids():
        stream = streams(open_stream(client, "/stream/feed", headers=alice.headers,
                                     query_string={"last_event_id": event_id}))
        assert stream.status == 200, event_id
        assert stream.until("resync_required")
        stream.close()

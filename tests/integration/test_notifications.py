"""Notifications: each kind, never for one's own action, told once, listed and marked read."""
import re
import uuid

from app.services.posts import create_post
from tests.integration.test_queries import counting_queries
from tests.support.pageforms import HTML, fresh_client, sign_up
from tests.support.streams import open_stream


def _inbox(user, query=""):
    response = user.call("GET", f"/api/notifications{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _kinds(user):
    return [(n["type"], n["actor"]["username"]) for n in _inbox(user)["notifications"]]


def test_each_kind_is_stored_for_its_recipient_newest_first(api):
    alice, bob = api.user("alice"), api.user("bob")
    bob.follow(alice)
    post = alice.post("hello")
    comment = bob.call("POST", f"/api/posts/{post['id']}/comments",
                       json={"content": "nice"}).get_json()
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "like"})
    own = alice.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "thanks"})
    alice.call("PUT", f"/api/comments/{own.get_json()['id']}/like")  # her own comment: nothing
    bob.call("PUT", f"/api/comments/{own.get_json()['id']}/like")
    bob.post("hey @ALICE and @alice, and @nobody_here and mail@alice")

    inbox = _inbox(alice)
    assert [n["type"] for n in inbox["notifications"]] == [
        "mention", "comment_like", "reaction", "comment", "follow"]
    assert inbox["unread"] == 5 and inbox["next_before"] is None
    mention, like, reaction, commented, follow = inbox["notifications"]
    assert follow == {"id": follow["id"], "type": "follow", "created_at": follow["created_at"],
                      "read": False, "actor": {"id": bob.id, "username": "bob",
                                               "display_name": "bob"}}
    assert commented["post_id"] == post["id"] and commented["comment_id"] == comment["id"]
    assert reaction["post_id"] == post["id"] and "comment_id" not in reaction
    assert like["comment_id"] == own.get_json()["id"]
    assert "comment_id" not in mention
    assert _inbox(bob)["notifications"] == []  # nothing of alice's own actions reached him


def test_a_reaction_is_told_once_whatever_becomes_of_it(api):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post()
    path = f"/api/posts/{post['id']}/reaction"
    bob.call("PUT", path, json={"type": "like"})
    bob.call("PUT", path, json={"type": "love"})  # changed: no news
    bob.call("DELETE", path)
    bob.call("PUT", path, json={"type": "wow"})  # removed and re-added: still no news
    alice.call("PUT", path, json={"type": "wow"})  # her own
    assert _kinds(alice) == [("reaction", "bob")]
    # Unfollow and follow again: one follow notification.
    bob.follow(alice)
    bob.call("DELETE", "/api/users/alice/follow")
    bob.follow(alice)
    assert _kinds(alice) == [("follow", "bob"), ("reaction", "bob")]


def test_mentions_in_comments_and_edits_tell_each_person_once(api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    post = alice.post("no one yet")
    bob.call("POST", f"/api/posts/{post['id']}/comments",
             json={"content": "@alice @carol @carol @bob"})
    # alice hears of the comment (not also of the mention); carol of the mention; bob of nothing.
    assert _kinds(alice) == [("comment", "bob")]
    [mention] = _inbox(carol)["notifications"]
    assert mention["type"] == "mention" and mention["post_id"] == post["id"]
    assert mention["comment_id"]
    assert _kinds(bob) == []
    alice.call("PATCH", f"/api/posts/{post['id']}", json={"content": "hi @carol"})
    alice.call("PATCH", f"/api/posts/{post['id']}", json={"content": "hi @carol and @bob"})
    assert _kinds(carol) == [("mention", "alice"), ("mention", "bob")]
    assert _kinds(bob) == [("mention", "alice")]


def test_the_list_pages_by_cursor_and_marking_read_counts_down(api):
    alice = api.user("alice")
    others = [api.user(f"fan{i}") for i in range(5)]
    for other in others:
        other.follow(alice)
    first = _inbox(alice, "?limit=2")
    second = _inbox(alice, f"?limit=2&before={first['next_before']}")
    third = _inbox(alice, f"?limit=2&before={second['next_before']}")
    names = [n["actor"]["username"] for page in (first, second, third)
             for n in page["notifications"]]
    assert names == ["fan4", "fan3", "fan2", "fan1", "fan0"] and third["next_before"] is None

    ids = [n["id"] for n in first["notifications"]]
    bob = api.user("bob")
    answer = bob.call("POST", "/api/notifications/read", json={"ids": ids})
    assert answer.get_json() == {"unread": 0}  # others' ids are ignored
    answer = alice.call("POST", "/api/notifications/read", json={"ids": ids + [str(uuid.uuid4())]})
    assert answer.status_code == 200 and answer.get_json() == {"unread": 3}
    assert [n["read"] for n in _inbox(alice)["notifications"]] == [True, True, False, False, False]
    assert alice.call("POST", "/api/notifications/read", json={"all": True}).get_json() == {
        "unread": 0}


def test_bad_requests_get_the_envelope_and_change_nothing(api):
    alice, bob = api.user("alice"), api.user("bob")
    bob.follow(alice)
    for body in ({}, {"all": False}, {"ids": ["nope"]}, {"ids": "x"}, {"ids": [], "all": True},
                 {"all": "yes"}, {"ids": ["a"] * 101}):
        response = alice.call("POST", "/api/notifications/read", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["code"] == "validation_error"
        assert response.get_json()["error"]["fields"]
    assert alice.call("POST", "/api/notifications/read", data="[").status_code == 400
    assert alice.call("GET", "/api/notifications?limit=0").status_code == 422
    assert alice.call("GET", "/api/notifications?before=zzz").status_code == 422
    assert api.client.get("/api/notifications").status_code == 401
    assert _inbox(alice)["unread"] == 1


def test_the_list_takes_a_constant_number_of_queries(app, api):
    alice = api.user("alice")
    post = alice.post("popular")
    for i in range(12):
        fan = api.user(f"fan{i}")
        fan.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "like"})
    _inbox(alice, "?limit=1")
    with counting_queries(app) as few:
        assert len(_inbox(alice, "?limit=2")["notifications"]) == 2
    with counting_queries(app) as many:
        assert len(_inbox(alice, "?limit=12")["notifications"]) == 12
    assert len(many) == len(few) <= 5


def test_the_event_reaches_only_the_recipients_own_feed_with_the_unread_count(client, api):
    alice, bob = api.user("alice"), api.user("bob")
    alice.follow(bob)  # bob hears of it: the stream opened below must not see it
    stream = open_stream(client, "/stream/feed", headers=alice.headers)
    bobs = open_stream(client, "/stream/feed", headers=bob.headers)
    stream.until("connection_established")
    bobs.until("connection_established")
    post = alice.post("mine")
    stream.until("new_post")
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "haha"})
    event = stream.until("notification")
    assert event["data"]["unread"] == 1
    assert event["data"]["notification"] == _inbox(alice)["notifications"][0]
    assert event["id"]
    bob.post("unrelated")  # bob's feed goes on; alice's notification never reached it
    assert "notification" not in [e["event"] for e in bobs.events + [bobs.until("new_post")]]
    stream.close()
    bobs.close()


def test_without_a_vapid_key_push_is_off_and_says_so(api):
    alice = api.user("alice")
    subscription = {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "x", "auth": "y"}}
    for method, path, body in (("GET", "/api/push/public-key", None),
                               ("POST", "/api/push/subscriptions", subscription)):
        response = alice.call(method, path, json=body)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_the_page_groups_links_and_marks_read_without_javascript(client, api):
    browser = fresh_client(client)
    name = sign_up(browser)
    me = browser.get("/api/me").get_json()
    fans = [api.user(f"fan{i}") for i in range(4)]
    with browser.application.app_context():
        her_post = create_post(me["id"], "hers")["id"]
    for fan in fans:
        fan.call("PUT", f"/api/posts/{her_post}/reaction", json={"type": "love"})
    fans[1].call("PUT", f"/api/users/{name}/follow")
    fans[2].post(f"hi @{name}")

    page = browser.get("/notifications", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert '<script' not in html.split("<main", 1)[1]  # the list itself is plain HTML
    lines = re.findall(r'<li class="notification( unread)?" data-type="(\w+)"', html)
    assert lines == [(" unread", "mention"), (" unread", "follow"), (" unread", "reaction")]
    assert "fan3 (@fan3) and 3 others reacted to your post" in html
    assert f'href="/post/{her_post}"' in html and 'href="/u/fan1"' in html
    assert 'data-role="unread-count" hidden>0<' in html  # read as they are shown
    assert api.client.get("/notifications", headers=HTML).status_code == 302  # signed out

    fans[3].call("PUT", f"/api/users/{name}/follow")
    assert 'data-role="unread-count">1<' in browser.get("/", headers=HTML).text
    lines = re.findall(r'<li class="notification( unread)?" data-type="(\w+)"',
                       browser.get("/notifications", headers=HTML).text)
    assert lines == [(" unread", "follow"), ("", "mention"), ("", "reaction")]


def test_the_service_worker_is_served_for_the_whole_site(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Service-Worker-Allowed"] == "/"
    assert "showNotification" in response.text

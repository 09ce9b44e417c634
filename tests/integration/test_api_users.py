"""Users and follows: ``/api/me``, ``/api/users/<name>``, follow and unfollow, a user's posts."""
import re

from tests.support.envelope import error_of

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
USER_KEYS = {"id", "username", "display_name", "created_at", "followers_count", "following_count"}


def get_user(viewer, name):
    response = viewer.call("GET", f"/api/users/{name}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_me_is_the_signed_in_user(api):
    alice = api.user("alice")
    response = alice.call("GET", "/api/me")
    assert response.status_code == 200
    me = response.get_json()
    assert USER_KEYS <= set(me) <= USER_KEYS | {"is_following"}
    assert me["id"] == alice.id and me["username"] == "alice" and me["display_name"] == "alice"
    assert ISO_Z.match(me["created_at"])
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    assert me.get("is_following", False) is False


def test_user_by_name_in_any_case(api):
    alice, bob = api.user("Alice"), api.user("bob")
    for name in ("Alice", "alice", "ALICE", "aLiCe"):
        user = get_user(bob, name)
        assert set(user) == USER_KEYS | {"is_following"}
        assert user["id"] == alice.id and user["username"] == "Alice"
        assert user["is_following"] is False


def test_unknown_user_is_404(api):
    alice = api.user("alice")
    for name in ("nobody", "x", "not a name", "a" * 31, "a%00b", "%C3%A9mile"):
        error_of(alice.call("GET", f"/api/users/{name}"), 404, "not_found")
        error_of(alice.call("GET", f"/api/users/{name}/posts"), 404, "not_found")
        error_of(alice.call("PUT", f"/api/users/{name}/follow"), 404, "not_found")
        error_of(alice.call("DELETE", f"/api/users/{name}/follow"), 404, "not_found")


def test_follow_is_idempotent_and_counted(api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    for _ in range(2):
        response = alice.call("PUT", "/api/users/BOB/follow")
        assert response.status_code == 200
        assert response.get_json() == {"following": True}
    carol.follow(bob)

    seen_by_alice = get_user(alice, "bob")
    assert seen_by_alice["is_following"] is True
    assert seen_by_alice["followers_count"] == 2
    assert seen_by_alice["following_count"] == 0
    assert get_user(bob, "alice")["is_following"] is False  # follows are directed
    me = alice.call("GET", "/api/me").get_json()
    assert (me["followers_count"], me["following_count"]) == (0, 1)

    for _ in range(2):
        response = alice.call("DELETE", "/api/users/bob/follow")
        assert response.status_code == 200
        assert response.get_json() == {"following": False}
    seen_by_alice = get_user(alice, "bob")
    assert seen_by_alice["is_following"] is False
    assert seen_by_alice["followers_count"] == 1  # carol still follows
    assert alice.call("GET", "/api/me").get_json()["following_count"] == 0


def test_unfollow_someone_never_followed_is_fine(api):
    alice = api.user("alice")
    api.user("bob")
    response = alice.call("DELETE", "/api/users/bob/follow")
    assert response.status_code == 200 and response.get_json() == {"following": False}
    assert get_user(alice, "bob")["followers_count"] == 0


def test_following_oneself_is_400(api):
    alice = api.user("alice")
    for name in ("alice", "ALICE"):
        error = error_of(alice.call("PUT", f"/api/users/{name}/follow"), 400)
        assert error["code"] != "bad_json"
    me = alice.call("GET", "/api/me").get_json()
    assert (me["followers_count"], me["following_count"]) == (0, 0)


def test_follow_needs_authentication(api, client):
    api.user("bob")
    error_of(client.put("/api/users/bob/follow"), 401, "token_missing")
    error_of(client.get("/api/users/bob"), 401, "token_missing")


def test_user_posts_are_newest_first_and_paged(api):
    alice, bob = api.user("alice"), api.user("bob")
    written = [alice.post(f"alice {i}")["id"] for i in range(5)]
    bob.post("not alice's")

    first = bob.call("GET", "/api/users/ALICE/posts?limit=2")
    assert first.status_code == 200
    page = first.get_json()
    assert set(page) == {"posts", "next_before"}
    seen = [p["id"] for p in page["posts"]]
    cursor = page["next_before"]
    assert len(seen) == 2 and isinstance(cursor, str)
    while cursor:
        page = bob.call("GET", f"/api/users/alice/posts?limit=2&before={cursor}").get_json()
        seen += [p["id"] for p in page["posts"]]
        cursor = page["next_before"]
    assert seen == list(reversed(written))
    assert all(p["author"]["username"] == "alice" for p in page["posts"])

    whole = bob.call("GET", "/api/users/alice/posts").get_json()
    assert [p["id"] for p in whole["posts"]] == list(reversed(written))
    assert whole["next_before"] is None
    assert all("my_reaction" in p for p in whole["posts"])


def test_user_posts_of_a_user_without_posts(api):
    alice = api.user("alice")
    assert alice.call("GET", "/api/users/alice/posts").get_json() == {"posts": [],
                                                                       "next_before": None}


def test_user_posts_validates_the_query(api):
    alice = api.user("alice")
    for query in ("limit=0", "limit=101", "limit=abc", "before=nonsense"):
        error = error_of(alice.call("GET", f"/api/users/alice/posts?{query}"), 422,
                         "validation_error")
        assert query.split("=")[0] in error["fields"]

"""Comments and comment likes."""
import re
import uuid

from tests.support.envelope import error_of

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
COMMENT_KEYS = {"id", "post_id", "author", "content", "created_at", "like_count"}


def comment(user, post_id, content="nice"):
    response = user.call("POST", f"/api/posts/{post_id}/comments", json={"content": content})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def comments_of(user, post_id, query=""):
    response = user.call("GET", f"/api/posts/{post_id}/comments{query}")
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert set(page) == {"comments", "next_after"}
    return page


def comment_count(user, post_id):
    return user.call("GET", f"/api/posts/{post_id}").get_json()["comment_count"]


def test_create_answers_201_with_the_contract_shape(api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("comment here")["id"]
    response = bob.call("POST", f"/api/posts/{post_id}/comments", json={"content": "first!"})
    assert response.status_code == 201
    created = response.get_json()
    assert set(created) == COMMENT_KEYS
    assert str(uuid.UUID(created["id"])) == created["id"]
    assert created["post_id"] == post_id
    assert created["author"] == {"id": bob.id, "username": "bob", "display_name": "bob"}
    assert created["content"] == "first!"
    assert ISO_Z.match(created["created_at"])
    assert created["like_count"] == 0
    assert comments_of(alice, post_id) == {"comments": [created], "next_after": None}
    assert comment_count(alice, post_id) == 1


def test_content_rules(api):
    alice = api.user("alice")
    post_id = alice.post("p")["id"]
    assert comment(alice, post_id, "x")["content"] == "x"
    assert len(comment(alice, post_id, "c" * 2000)["content"]) == 2000
    for body in ({"content": ""}, {"content": "  \n "}, {"content": "c" * 2001}, {"content": 7},
                 {"content": "\x00"}, {}):
        error = error_of(alice.call("POST", f"/api/posts/{post_id}/comments", json=body), 422,
                         "validation_error")
        assert "content" in error["fields"], body
    assert comment_count(alice, post_id) == 2


def test_list_is_oldest_first_and_paged(api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("discuss")["id"]
    other_post = alice.post("elsewhere")["id"]
    written = [comment(alice if i % 2 else bob, post_id, f"c{i}")["id"] for i in range(5)]
    comment(bob, other_post, "not on this post")

    whole = comments_of(bob, post_id)
    assert [c["id"] for c in whole["comments"]] == written
    assert whole["next_after"] is None

    seen, cursor, pages = [], None, 0
    while True:
        page = comments_of(bob, post_id, "?limit=2" + (f"&after={cursor}" if cursor else ""))
        pages += 1
        seen += [c["id"] for c in page["comments"]]
        cursor = page["next_after"]
        if cursor is None:
            break
    assert seen == written and pages == 3

    # A comment written after a page was read appears on the next page of that walk.
    first = comments_of(bob, post_id, "?limit=5")
    assert first["next_after"] is None
    first = comments_of(bob, post_id, "?limit=4")
    late = comment(alice, post_id, "late")["id"]
    rest = comments_of(bob, post_id, f"?after={first['next_after']}")
    assert [c["id"] for c in rest["comments"]] == [written[4], late]


def test_list_validates_the_query(api):
    alice = api.user("alice")
    post_id = alice.post("p")["id"]
    for query in ("limit=0", "limit=101", "limit=x", "after=garbage"):
        error = error_of(alice.call("GET", f"/api/posts/{post_id}/comments?{query}"), 422,
                         "validation_error")
        assert query.split("=")[0] in error["fields"]


def test_delete_by_the_comment_author_or_the_post_author_only(api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    post_id = alice.post("moderated")["id"]
    by_bob = comment(bob, post_id, "bob's")
    by_bob_2 = comment(bob, post_id, "bob's second")
    by_alice = comment(alice, post_id, "alice's")

    error_of(carol.call("DELETE", f"/api/comments/{by_bob['id']}"), 403, "forbidden")
    error_of(bob.call("DELETE", f"/api/comments/{by_alice['id']}"), 403, "forbidden")
    assert comment_count(alice, post_id) == 3

    response = bob.call("DELETE", f"/api/comments/{by_bob['id']}")
    assert response.status_code == 204 and response.get_data() == b""
    response = alice.call("DELETE", f"/api/comments/{by_bob_2['id']}")  # the post's author
    assert response.status_code == 204
    assert [c["id"] for c in comments_of(carol, post_id)["comments"]] == [by_alice["id"]]
    assert comment_count(alice, post_id) == 1
    error_of(bob.call("DELETE", f"/api/comments/{by_bob['id']}"), 404, "not_found")


def test_likes_are_idempotent(api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("p")["id"]
    created = comment(alice, post_id, "like me")
    cid = created["id"]

    for _ in range(2):
        response = bob.call("PUT", f"/api/comments/{cid}/like")
        assert response.status_code == 200
        assert response.get_json() == {"comment_id": cid, "post_id": post_id, "like_count": 1,
                                        "liked": True}
    answer = alice.call("PUT", f"/api/comments/{cid}/like").get_json()
    assert answer["like_count"] == 2 and answer["liked"] is True
    assert comments_of(bob, post_id)["comments"][0]["like_count"] == 2

    for _ in range(2):
        response = bob.call("DELETE", f"/api/comments/{cid}/like")
        assert response.status_code == 200
        assert response.get_json() == {"comment_id": cid, "post_id": post_id, "like_count": 1,
                                        "liked": False}
    answer = alice.call("DELETE", f"/api/comments/{cid}/like").get_json()
    assert answer == {"comment_id": cid, "post_id": post_id, "like_count": 0, "liked": False}
    assert comments_of(bob, post_id)["comments"][0]["like_count"] == 0


def test_unknown_posts_and_comments_are_404(api):
    alice = api.user("alice")
    for bad in (str(uuid.uuid4()), "abc", "0"):
        error_of(alice.call("GET", f"/api/posts/{bad}/comments"), 404, "not_found")
        error_of(alice.call("POST", f"/api/posts/{bad}/comments", json={"content": "x"}), 404,
                 "not_found")
        error_of(alice.call("DELETE", f"/api/comments/{bad}"), 404, "not_found")
        error_of(alice.call("PUT", f"/api/comments/{bad}/like"), 404, "not_found")
        error_of(alice.call("DELETE", f"/api/comments/{bad}/like"), 404, "not_found")


def test_comments_need_authentication(api, client):
    alice = api.user("alice")
    post_id = alice.post("p")["id"]
    cid = comment(alice, post_id)["id"]
    error_of(client.get(f"/api/posts/{post_id}/comments"), 401, "token_missing")
    error_of(client.post(f"/api/posts/{post_id}/comments", json={"content": "x"}), 401,
             "token_missing")
    error_of(client.delete(f"/api/comments/{cid}"), 401, "token_missing")
    error_of(client.put(f"/api/comments/{cid}/like"), 401, "token_missing")

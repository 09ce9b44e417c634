"""Posts: create, read, edit, delete, content rules, reactions and typing."""
import re
import time
import uuid

from tests.support.envelope import error_of

REACTIONS = ("like", "love", "haha", "wow", "sad", "angry")
ZERO = dict.fromkeys(REACTIONS, 0)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
POST_KEYS = {"id", "author", "content", "created_at", "updated_at", "reaction_counts",
             "comment_count", "my_reaction"}


def get_post(user, post_id):
    response = user.call("GET", f"/api/posts/{post_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# -- create and read ----------------------------------------------------------------------------

def test_create_answers_201_with_the_contract_shape(api):
    alice = api.user("alice")
    response = alice.call("POST", "/api/posts", json={"content": "  hello, world ✨  "})
    assert response.status_code == 201
    post = response.get_json()
    assert set(post) == POST_KEYS
    assert str(uuid.UUID(post["id"])) == post["id"]
    assert post["author"] == {"id": alice.id, "username": "alice", "display_name": "alice"}
    assert post["content"] == "  hello, world ✨  "
    assert ISO_Z.match(post["created_at"]) and ISO_Z.match(post["updated_at"])
    assert post["reaction_counts"] == ZERO
    assert post["comment_count"] == 0
    assert post["my_reaction"] is None
    assert get_post(alice, post["id"]) == post


def test_get_as_another_user_and_unknown_ids(api):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post("visible to everyone signed in")
    assert get_post(bob, post["id"])["content"] == "visible to everyone signed in"
    assert get_post(bob, post["id"].upper())["id"] == post["id"]  # UUIDs ignore case
    reacted = bob.call("PUT", f"/api/posts/{post['id'].upper()}/reaction", json={"type": "like"})
    assert reacted.get_json()["post_id"] == post["id"]
    for bad in (str(uuid.uuid4()), "abc", "1", "%20"):
        error_of(bob.call("GET", f"/api/posts/{bad}"), 404, "not_found")


def test_content_bounds_and_unicode(api):
    alice = api.user("alice")
    assert alice.post("x")["content"] == "x"
    assert len(alice.post("a" * 5000)["content"]) == 5000
    emoji = "😀" * 5000  # characters, not bytes
    assert alice.post(emoji)["content"] == emoji
    markup = "line one\nline two\t<b>&amp;</b>"
    assert alice.post(markup)["content"] == markup


def test_content_validation(api):
    alice = api.user("alice")
    cases = [{"content": ""}, {"content": "   \n\t "}, {"content": "a" * 5001},
             {"content": "😀" * 5001}, {"content": 123}, {"content": None}, {"content": ["x"]},
             {"content": "nul \x00 char"}, {}, {"text": "wrong key"}]
    for body in cases:
        error = error_of(alice.call("POST", "/api/posts", json=body), 422, "validation_error")
        assert "content" in error["fields"], body
    too_long = error_of(alice.call("POST", "/api/posts", json={"content": "a" * 5001}), 422,
                        "validation_error")
    assert too_long["fields"]["content"] == "too long"
    assert too_long["message"] == "content must be 1 to 5000 characters"
    nul = error_of(alice.call("POST", "/api/posts", json={"content": "a\x00"}), 422,
                   "validation_error")
    assert "NUL" in nul["message"] and "NUL" in nul["fields"]["content"]
    assert alice.call("GET", "/api/users/alice/posts").get_json()["posts"] == []


def test_unknown_keys_are_ignored(api):
    alice = api.user("alice")
    response = alice.call("POST", "/api/posts",
                          json={"content": "hi", "id": "forged", "author": {"id": "x"},
                                "comment_count": 99})
    assert response.status_code == 201
    post = response.get_json()
    assert post["id"] != "forged" and post["author"]["id"] == alice.id
    assert post["comment_count"] == 0


# -- edit and delete ----------------------------------------------------------------------------

def test_patch_by_the_author(api):
    alice = api.user("alice")
    post = alice.post("first draft")
    time.sleep(0.01)
    response = alice.call("PATCH", f"/api/posts/{post['id']}", json={"content": "second draft"})
    assert response.status_code == 200
    edited = response.get_json()
    assert set(edited) == POST_KEYS
    assert edited["content"] == "second draft"
    assert edited["id"] == post["id"] and edited["created_at"] == post["created_at"]
    assert edited["updated_at"] > post["updated_at"]
    assert get_post(alice, post["id"]) == edited


def test_patch_validates_content(api):
    alice = api.user("alice")
    post = alice.post("original")
    for body in ({"content": ""}, {"content": "a" * 5001}, {"content": 5}, {}):
        error = error_of(alice.call("PATCH", f"/api/posts/{post['id']}", json=body), 422,
                         "validation_error")
        assert "content" in error["fields"]
    assert get_post(alice, post["id"])["content"] == "original"


def test_only_the_author_may_patch_or_delete(api):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post("mine")
    error_of(bob.call("PATCH", f"/api/posts/{post['id']}", json={"content": "yours now"}), 403,
             "forbidden")
    error_of(bob.call("DELETE", f"/api/posts/{post['id']}"), 403, "forbidden")
    assert get_post(alice, post["id"]) == post


def test_delete_then_404(api):
    alice, bob = api.user("alice"), api.user("bob")
    post = alice.post("short-lived")
    bob.call("PUT", f"/api/posts/{post['id']}/reaction", json={"type": "sad"})
    comment = bob.call("POST", f"/api/posts/{post['id']}/comments", json={"content": "bye"})
    assert comment.status_code == 201

    response = alice.call("DELETE", f"/api/posts/{post['id']}")
    assert response.status_code == 204
    assert response.get_data() == b""
    error_of(alice.call("GET", f"/api/posts/{post['id']}"), 404, "not_found")
    error_of(alice.call("DELETE", f"/api/posts/{post['id']}"), 404, "not_found")
    error_of(alice.call("PATCH", f"/api/posts/{post['id']}", json={"content": "x"}), 404,
             "not_found")
    # Its comments went with it.
    error_of(bob.call("PUT", f"/api/comments/{comment.get_json()['id']}/like"), 404, "not_found")
    assert alice.call("GET", "/api/feed").get_json()["posts"] == []


def test_patch_and_delete_unknown_ids(api):
    alice = api.user("alice")
    for bad in (str(uuid.uuid4()), "abc"):
        error_of(alice.call("PATCH", f"/api/posts/{bad}", json={"content": "x"}), 404, "not_found")
        error_of(alice.call("DELETE", f"/api/posts/{bad}"), 404, "not_found")


# -- reactions ----------------------------------------------------------------------------------

def react(user, post_id, type_):
    response = user.call("PUT", f"/api/posts/{post_id}/reaction", json={"type": type_})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"post_id", "reaction_data"} and body["post_id"] == post_id
    assert set(body["reaction_data"]) == {"counts", "total"}
    assert set(body["reaction_data"]["counts"]) == set(REACTIONS)
    assert body["reaction_data"]["total"] == sum(body["reaction_data"]["counts"].values())
    return body["reaction_data"]


def test_each_reaction_type_replaces_the_previous_one(api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("react to me")["id"]
    for type_ in REACTIONS:
        data = react(bob, post_id, type_)
        assert data == {"counts": {**ZERO, type_: 1}, "total": 1}
        assert get_post(bob, post_id)["my_reaction"] == type_
        assert get_post(alice, post_id)["my_reaction"] is None
        assert get_post(alice, post_id)["reaction_counts"] == {**ZERO, type_: 1}


def test_only_a_changed_reaction_is_announced(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("announce")["id"]
    broker = app.extensions["broker"]
    broker.read(f"post:{post_id}")  # opened, as by a stream: a cold channel keeps nothing
    for type_ in ("like", "like", "wow", "wow"):
        react(bob, post_id, type_)
    assert broker.read(f"post:{post_id}").head.seq == 2  # like, then wow


def test_reactions_of_several_users_and_idempotence(api):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("popular")["id"]
    react(alice, post_id, "love")
    assert react(bob, post_id, "love") == {"counts": {**ZERO, "love": 2}, "total": 2}
    assert react(bob, post_id, "love") == {"counts": {**ZERO, "love": 2}, "total": 2}
    assert react(bob, post_id, "haha") == {"counts": {**ZERO, "love": 1, "haha": 1}, "total": 2}
    assert get_post(alice, post_id)["my_reaction"] == "love"
    assert get_post(bob, post_id)["my_reaction"] == "haha"

    for _ in range(2):  # removing is idempotent too
        response = bob.call("DELETE", f"/api/posts/{post_id}/reaction")
        assert response.status_code == 200
        assert response.get_json() == {
            "post_id": post_id, "reaction_data": {"counts": {**ZERO, "love": 1}, "total": 1}}
    assert get_post(bob, post_id)["my_reaction"] is None
    alice.call("DELETE", f"/api/posts/{post_id}/reaction")
    post = get_post(alice, post_id)
    assert post["reaction_counts"] == ZERO and post["my_reaction"] is None


def test_invalid_reaction_types_are_422(api):
    alice = api.user("alice")
    post_id = alice.post("x")["id"]
    for body in ({"type": "dislike"}, {"type": "LIKE"}, {"type": ""}, {"type": 1}, {}):
        error = error_of(alice.call("PUT", f"/api/posts/{post_id}/reaction", json=body), 422,
                         "validation_error")
        assert "type" in error["fields"], body
    assert get_post(alice, post_id)["reaction_counts"] == ZERO


def test_reactions_on_unknown_posts_are_404(api):
    alice = api.user("alice")
    for bad in (str(uuid.uuid4()), "abc"):
        error_of(alice.call("PUT", f"/api/posts/{bad}/reaction", json={"type": "like"}), 404,
                 "not_found")
        error_of(alice.call("DELETE", f"/api/posts/{bad}/reaction"), 404, "not_found")


# -- typing -------------------------------------------------------------------------------------

def test_typing(api, client):
    alice, bob = api.user("alice"), api.user("bob")
    post_id = alice.post("type under me")["id"]
    response = bob.call("POST", f"/api/posts/{post_id}/typing")
    assert response.status_code == 202
    for bad in (str(uuid.uuid4()), "abc"):
        error_of(bob.call("POST", f"/api/posts/{bad}/typing"), 404, "not_found")
    error_of(client.post(f"/api/posts/{post_id}/typing"), 401, "token_missing")

"""``GET /api/feed``: own and followed users' posts, newest first, cursor paging."""
from datetime import datetime, timezone

from tests.support.envelope import error_of


def feed(user, query=""):
    response = user.call("GET", f"/api/feed{query}")
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert set(page) == {"posts", "next_before"}
    return page


def walk(user, limit):
    """Return the ids of every feed page of *limit*, and the number of pages."""
    ids, pages, cursor = [], 0, None
    while True:
        query = f"?limit={limit}" + (f"&before={cursor}" if cursor else "")
        page = feed(user, query)
        pages += 1
        assert len(page["posts"]) <= limit
        ids += [p["id"] for p in page["posts"]]
        cursor = page["next_before"]
        if cursor is None:
            return ids, pages
        assert page["posts"], "a page with a next cursor must not be empty"
        assert pages < 100, "paging does not end"


def test_feed_holds_own_and_followed_posts_newest_first(api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    alice.follow(bob)
    expected = []
    for author, text in [(alice, "a1"), (bob, "b1"), (carol, "c1"), (bob, "b2"), (alice, "a2"),
                         (carol, "c2")]:
        post = author.post(text)
        if author is not carol:
            expected.append(post["id"])

    page = feed(alice)
    assert [p["id"] for p in page["posts"]] == list(reversed(expected))
    assert page["next_before"] is None
    assert all(p["author"]["username"] in ("alice", "bob") for p in page["posts"])
    created = [p["created_at"] for p in page["posts"]]
    assert created == sorted(created, reverse=True)
    # The follow is one way: bob's feed has only his own posts.
    assert [p["content"] for p in feed(bob)["posts"]] == ["b2", "b1"]
    assert [p["content"] for p in feed(carol)["posts"]] == ["c2", "c1"]


def test_empty_feed(api):
    alice = api.user("alice")
    assert feed(alice) == {"posts": [], "next_before": None}


def test_feed_posts_carry_the_viewers_reaction(api):
    alice, bob = api.user("alice"), api.user("bob")
    alice.follow(bob)
    post_id = bob.post("react")["id"]
    alice.call("PUT", f"/api/posts/{post_id}/reaction", json={"type": "wow"})
    item = feed(alice)["posts"][0]
    assert item["my_reaction"] == "wow"
    assert item["reaction_counts"]["wow"] == 1
    assert feed(bob)["posts"][0]["my_reaction"] is None


def test_limit_bounds_and_default(app, api):
    alice = api.user("alice")
    _many_posts(app, alice.id, 25)
    assert len(feed(alice)["posts"]) == 20
    assert len(feed(alice, "?limit=1")["posts"]) == 1
    assert len(feed(alice, "?limit=100")["posts"]) == 25
    assert feed(alice, "?limit=25")["next_before"] is None
    assert feed(alice, "?limit=24")["next_before"] is not None
    for bad in ("0", "101", "-1", "abc", "1.5"):
        error = error_of(alice.call("GET", f"/api/feed?limit={bad}"), 422, "validation_error")
        assert "limit" in error["fields"], bad


def _many_posts(app, author_id, n, same_time=False):
    """Insert *n* posts by *author_id* directly, one second apart or all at one instant."""
    from app.extensions import db
    from app.models import Post

    base = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    with app.app_context():
        for i in range(n):
            at = datetime.fromtimestamp(base if same_time else base + i, timezone.utc)
            db.session.add(Post(author_id=author_id, content=f"post {i}", created_at=at,
                                updated_at=at))
        db.session.commit()


def test_cursor_walk_sees_every_post_once(app, api):
    alice, bob, carol = api.user("alice"), api.user("bob"), api.user("carol")
    alice.follow(bob)
    _many_posts(app, alice.id, 12)
    _many_posts(app, bob.id, 11)
    _many_posts(app, carol.id, 5)  # not followed
    everything, _ = walk(alice, 100)
    assert len(everything) == 23
    for limit in (1, 5, 7, 23):
        ids, pages = walk(alice, limit)
        assert ids == everything, limit
        assert len(set(ids)) == 23
        assert pages == -(-23 // limit)


def test_cursor_walk_with_identical_timestamps(app, api):
    alice, bob = api.user("alice"), api.user("bob")
    alice.follow(bob)
    _many_posts(app, alice.id, 6, same_time=True)
    _many_posts(app, bob.id, 6, same_time=True)
    everything, _ = walk(alice, 100)
    assert len(set(everything)) == 12
    for limit in (1, 5):
        ids, _ = walk(alice, limit)
        assert ids == everything
    # Posts written after the walk began never show up on later pages of that walk.
    first = feed(alice, "?limit=4")
    alice.post("brand new")
    rest, cursor = [], first["next_before"]
    while cursor:
        page = feed(alice, f"?limit=4&before={cursor}")
        rest += [p["id"] for p in page["posts"]]
        cursor = page["next_before"]
    assert [p["id"] for p in first["posts"]] + rest == everything


def test_bad_cursor_is_422(app, api):
    import base64

    alice = api.user("alice")
    post = alice.post("x")

    def cursor(text):
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    bad_cursors = ["abc", "!!!!", "a" * 201, cursor("no separator"),
                   cursor("not a date|" + post["id"]),
                   cursor("2024-01-01T00:00:00+00:00|not-a-uuid"),
                   cursor("2024-01-01T00:00:00+00:00|a\x00b"),
                   cursor("0001-01-01T00:00:00+01:00|" + post["id"]),
                   cursor("9999-12-31T23:59:59-01:00|" + post["id"])]
    for bad in bad_cursors:
        error = error_of(alice.call("GET", f"/api/feed?before={bad}"), 422, "validation_error")
        assert "before" in error["fields"], bad


def test_unfollowing_removes_their_posts(api):
    alice, bob = api.user("alice"), api.user("bob")
    bob.post("bob's old post")
    alice.follow(bob)
    assert [p["content"] for p in feed(alice)["posts"]] == ["bob's old post"]
    alice.post("alice's post")
    assert alice.call("DELETE", "/api/users/bob/follow").status_code == 200
    assert [p["content"] for p in feed(alice)["posts"]] == ["alice's post"]

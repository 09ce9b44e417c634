"""A feed page costs a constant number of SQL queries, however many posts it holds."""
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, insert, select

from app.extensions import db
from app.models import Comment, CommentLike, Follow, Post, Reaction, User

REACTIONS = ("like", "love", "haha", "wow", "sad", "angry")


@contextmanager
def counting_queries(app):
    """Count the statements the app's engine executes inside the block (the outbox's pending
    batch of deletions, from writes before it, goes first: it is not the block's)."""
    app.extensions["outbox"].flush()
    statements = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _populate(app, viewer, n_authors=10, posts_each=10):
    """Give the viewer a feed of ``n_authors * posts_each`` posts with reactions and comments.

    Rows are inserted directly (it is the reading that is measured); the authors are real
    accounts, followed by the viewer, and the viewer reacts to some posts.
    """
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        # Accounts that never sign in: inserted without spending time on password hashes.
        db.session.execute(insert(User), [
            {"id": str(uuid.uuid4()), "username": f"author{i}", "username_key": f"author{i}",
             "display_name": f"Author {i}", "password_hash": "!", "created_at": base}
            for i in range(n_authors)])
        authors = db.session.scalars(select(User).where(User.id != viewer.id)
                                     .order_by(User.username)).all()
        for author in authors:
            db.session.add(Follow(follower_id=viewer.id, followee_id=author.id))
        expected = {}
        n = 0
        for a, author in enumerate(authors):
            for p in range(posts_each):
                at = base + timedelta(minutes=n)
                post = Post(author_id=author.id, content=f"post {n}", created_at=at, updated_at=at)
                db.session.add(post)
                db.session.flush()
                counts = dict.fromkeys(REACTIONS, 0)
                for r, reactor in enumerate(authors[: n % 4]):
                    kind = REACTIONS[(n + r) % 6]
                    db.session.add(Reaction(post_id=post.id, user_id=reactor.id, type=kind))
                    counts[kind] += 1
                mine = REACTIONS[n % 6] if n % 3 == 0 else None
                if mine:
                    db.session.add(Reaction(post_id=post.id, user_id=viewer.id, type=mine))
                    counts[mine] += 1
                for c in range(n % 3):
                    comment = Comment(post_id=post.id, author_id=authors[c].id, content="c",
                                      created_at=at)
                    db.session.add(comment)
                    db.session.flush()
                    db.session.add(CommentLike(comment_id=comment.id, user_id=viewer.id))
                expected[post.id] = (counts, n % 3, mine, author.username)
                n += 1
        db.session.commit()
    return expected


def _feed_queries(app, viewer, limit):
    with counting_queries(app) as statements:
        response = viewer.call("GET", f"/api/feed?limit={limit}")
    assert response.status_code == 200
    return response.get_json()["posts"], len(statements)


def test_feed_page_takes_a_constant_number_of_queries(app, api):
    viewer = api.user("viewer")
    expected = _populate(app, viewer)
    viewer.call("GET", "/api/feed?limit=1")  # warm up: first-use work is not the point here

    posts_10, queries_10 = _feed_queries(app, viewer, 10)
    posts_100, queries_100 = _feed_queries(app, viewer, 100)

    assert len(posts_10) == 10 and len(posts_100) == 100
    assert [p["id"] for p in posts_100[:10]] == [p["id"] for p in posts_10]
    # The page is right, not just cheap.
    for post in posts_100:
        counts, comments, mine, author = expected[post["id"]]
        assert post["reaction_counts"] == counts
        assert post["comment_count"] == comments
        assert post["my_reaction"] == mine
        assert post["author"]["username"] == author
    assert queries_100 == queries_10, (queries_10, queries_100)
    assert queries_100 <= 10


def test_user_posts_and_comment_pages_take_a_constant_number_of_queries(app, api):
    viewer = api.user("viewer")
    _populate(app, viewer, n_authors=2, posts_each=50)
    viewer.call("GET", "/api/users/author0/posts?limit=1")
    with counting_queries(app) as few:
        assert len(viewer.call("GET", "/api/users/author0/posts?limit=5").get_json()["posts"]) == 5
    with counting_queries(app) as many:
        page = viewer.call("GET", "/api/users/author0/posts?limit=50").get_json()
        assert len(page["posts"]) == 50
    assert len(many) == len(few) <= 10

    with app.app_context():
        post_id = db.session.scalar(select(Post.id).where(Post.content == "post 0"))
        authors = db.session.scalars(select(User.id).where(User.username != "viewer")).all()
        for i in range(40):
            db.session.add(Comment(post_id=post_id, author_id=authors[i % 2], content=f"c{i}"))
        db.session.commit()
    with counting_queries(app) as few:
        assert len(viewer.call("GET", f"/api/posts/{post_id}/comments?limit=2")
                   .get_json()["comments"]) == 2
    with counting_queries(app) as many:
        assert len(viewer.call("GET", f"/api/posts/{post_id}/comments?limit=40")
                   .get_json()["comments"]) == 40
    assert len(many) == len(few) <= 10

"""Users, follows and the feed."""
from flask_jwt_extended import current_user, jwt_required

from app.api import bp
from app.api.openapi import documented
from app.inputs import schemas
from app.inputs.pagination import decode_cursor, encode_cursor
from app.inputs.validation import query_args
from app.ratelimit import limit_follows
from app.serializers import posts_json, user_json
from app.services import follows, posts
from app.services.lookup import get_user


@bp.get("/me")
@jwt_required()
@documented("The signed-in user", response=schemas.UserOut)
def me():
    """Return the signed-in user."""
    return user_json(current_user, current_user.id)


@bp.get("/users/<username>")
@jwt_required()
@documented("A user by name (any case)", response=schemas.UserOut)
def user(username):
    """Return a user by name, with whether the viewer follows them."""
    return user_json(get_user(username), current_user.id)


def _post_page(rows, cursor):
    return {"posts": posts_json(rows, current_user.id), "next_before": encode_cursor(cursor)}


@bp.get("/users/<username>/posts")
@jwt_required()
@documented("A user's posts, newest first", query=schemas.PageQuery, response=schemas.PostPage)
def user_posts(username):
    """Return a page of one user's posts."""
    page = query_args(schemas.PageQuery)
    author = get_user(username)
    return _post_page(*posts.user_posts_page(author.id, page.limit,
                                             decode_cursor(page.before, "before")))


@bp.get("/feed")
@jwt_required()
@documented("The viewer's and followed users' posts, newest first", query=schemas.PageQuery,
            response=schemas.PostPage)
def feed():
    """Return a page of the viewer's feed."""
    page = query_args(schemas.PageQuery)
    return _post_page(*posts.feed_page(current_user.id, page.limit,
                                       decode_cursor(page.before, "before")))


@bp.put("/users/<username>/follow")
@limit_follows
@jwt_required()
@documented("Follow a user (idempotent)", response=schemas.FollowOut)
def follow(username):
    """Follow a user."""
    follows.follow(current_user.id, get_user(username))
    return {"following": True}


@bp.delete("/users/<username>/follow")
@limit_follows
@jwt_required()
@documented("Stop following a user (idempotent)", response=schemas.FollowOut)
def unfollow(username):
    """Stop following a user."""
    follows.unfollow(current_user.id, get_user(username))
    return {"following": False}

"""Comments and comment likes."""
from flask_jwt_extended import current_user, jwt_required

from app.api import bp
from app.api.openapi import documented
from app.inputs import schemas
from app.inputs.pagination import decode_cursor, encode_cursor
from app.inputs.validation import json_body, query_args
from app.ratelimit import limit_writes
from app.serializers import comments_json
from app.services import comments


@bp.get("/posts/<post_id>/comments")
@jwt_required()
@documented("A post's comments, oldest first", query=schemas.CommentPageQuery,
            response=schemas.CommentPage)
def list_comments(post_id):
    """Return a page of a post's comments."""
    page = query_args(schemas.CommentPageQuery)
    rows, cursor = comments.comments_page(post_id, page.limit, decode_cursor(page.after, "after"))
    return {"comments": comments_json(rows), "next_after": encode_cursor(cursor)}


@bp.post("/posts/<post_id>/comments")
@limit_writes
@jwt_required()
@documented("Comment on a post", body=schemas.CommentIn, response=schemas.CommentOut, status=201)
def create_comment(post_id):
    """Add a comment to a post."""
    body = json_body(schemas.CommentIn)
    return comments.create_comment(current_user.id, post_id, body.content), 201


@bp.delete("/comments/<comment_id>")
@limit_writes
@jwt_required()
@documented("Delete a comment (its author or the post's author)", status=204)
def delete_comment(comment_id):
    """Delete a comment."""
    comments.delete_comment(current_user.id, comment_id)
    return "", 204


def _like_answer(comment, count, liked):
    return {"comment_id": comment.id, "post_id": comment.post_id, "like_count": count,
            "liked": liked}


@bp.put("/comments/<comment_id>/like")
@limit_writes
@jwt_required()
@documented("Like a comment (idempotent)", response=schemas.CommentLikeOut)
def like(comment_id):
    """Like a comment."""
    return _like_answer(*comments.set_like(current_user.id, comment_id, True), True)


@bp.delete("/comments/<comment_id>/like")
@limit_writes
@jwt_required()
@documented("Unlike a comment (idempotent)", response=schemas.CommentLikeOut)
def unlike(comment_id):
    """Unlike a comment."""
    return _like_answer(*comments.set_like(current_user.id, comment_id, False), False)

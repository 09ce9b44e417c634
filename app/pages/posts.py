"""A post's own page: the post, its comments, comment likes and the comment box."""
from flask import redirect, render_template, request, url_for

from app.events.channels import post_channel
from app.inputs import schemas
from app.inputs.pagination import decode_cursor, encode_cursor
from app.pages import bp
from app.pages.forms import read_content
from app.pages.live import resume_point
from app.pages.queries import liked_by
from app.pages.viewer import current_viewer, safe_next, signed_in
from app.ratelimit import limit_writes
from app.serializers import comments_json, post_json
from app.services import comments
from app.services.lookup import get_comment, get_post

COMMENT_PAGE_SIZE = 100


@bp.get("/post/<post_id>")
@signed_in
def post(post_id):
    """Show a post with its comments, oldest first."""
    viewer = current_viewer()
    found = get_post(post_id)
    last_event_id = resume_point(post_channel(found.id))
    rows, cursor = comments.comments_page(found.id, COMMENT_PAGE_SIZE,
                                          decode_cursor(request.args.get("after"), "after"))
    return render_template("pages/post.html", post=post_json(found, viewer.id),
                           comments=comments_json(rows), next_after=encode_cursor(cursor),
                           last_event_id=last_event_id,
                           liked=liked_by(viewer.id, [c.id for c in rows]))


@bp.post("/post/<post_id>/comment")
@limit_writes
@signed_in
def comment(post_id):
    """Add a comment to a post."""
    content = read_content(schemas.CommentIn)
    target = url_for("pages.post", post_id=post_id)
    if content is None:
        return redirect(target + "#comment-form")
    created = comments.create_comment(current_viewer().id, post_id, content)
    return redirect(f"{target}#comment-{created['id']}")


@bp.post("/comment/<comment_id>/like")
@limit_writes
@signed_in
def like(comment_id):
    """Like a comment, or unlike it when the form says ``liked=0``."""
    found, _count = comments.set_like(current_viewer().id, comment_id,
                                      request.form.get("liked", "1") == "1")
    target = safe_next(url_for("pages.post", post_id=found.post_id))
    return redirect(f"{target}#comment-{found.id}")


@bp.post("/comment/<comment_id>/delete")
@limit_writes
@signed_in
def delete_comment(comment_id):
    """Delete a comment as its author or the post's author."""
    post_id = get_comment(comment_id).post_id
    comments.delete_comment(current_viewer().id, comment_id)
    return redirect(url_for("pages.post", post_id=post_id) + "#comments")

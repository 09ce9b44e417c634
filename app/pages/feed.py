"""The home page (the feed, or a welcome), the composer, and changes to one's own posts."""
from flask import redirect, render_template, request, url_for

from app.counts import viewer_reactions
from app.inputs import schemas
from app.inputs.pagination import decode_cursor, encode_cursor
from app.pages import bp
from app.pages.forms import read_content
from app.pages.live import feed_resume_point
from app.pages.viewer import current_viewer, safe_next, signed_in
from app.ratelimit import limit_writes
from app.serializers import posts_json
from app.services import posts, reactions
from app.services.lookup import get_post

PAGE_SIZE = 20


@bp.get("/")
def index():
    """Show the viewer's feed, newest first, or the welcome page when signed out."""
    viewer = current_viewer()
    if viewer is None:
        return render_template("pages/welcome.html")
    last_event_id = feed_resume_point(viewer.id)
    rows, cursor = posts.feed_page(viewer.id, PAGE_SIZE,
                                   decode_cursor(request.args.get("before"), "before"))
    return render_template("pages/feed.html", posts=posts_json(rows, viewer.id),
                           next_before=encode_cursor(cursor), last_event_id=last_event_id,
                           paged=bool(request.args.get("before")))


@bp.post("/compose")
@limit_writes
@signed_in
def compose():
    """Publish a post from the composer."""
    content = read_content(schemas.PostIn)
    if content is not None:
        posts.create_post(current_viewer().id, content)
    return redirect(url_for("pages.index"))


@bp.post("/post/<post_id>/edit")
@limit_writes
@signed_in
def edit(post_id):
    """Replace the content of one's own post."""
    content = read_content(schemas.PostIn)
    if content is not None:
        posts.update_post(current_viewer().id, post_id, content)
    return redirect(safe_next(url_for("pages.post", post_id=post_id)))


@bp.post("/post/<post_id>/delete")
@limit_writes
@signed_in
def delete(post_id):
    """Delete one's own post."""
    posts.delete_post(current_viewer().id, post_id)
    target = safe_next(url_for("pages.index"))
    # The post's own page is gone with it.
    return redirect(url_for("pages.index") if post_id in target else target)


@bp.post("/post/<post_id>/react")
@limit_writes
@signed_in
def react(post_id):
    """Set the viewer's reaction to ``type``, or remove it when it already is that type."""
    viewer = current_viewer()
    chosen = request.form.get("type")
    post = get_post(post_id)
    post_id = post.id  # read before the change's commit expires the row
    if chosen and viewer_reactions([post_id], viewer.id).get(post_id) == chosen:
        reactions.clear_reaction(viewer.id, post)
    else:
        reactions.set_reaction(viewer.id, post, chosen)  # 422 for an unknown type
    return redirect(safe_next(url_for("pages.post", post_id=post_id)) + f"#post-{post_id}")

"""A person's profile: who they are, follow or unfollow them, their posts."""
from flask import redirect, render_template, request, url_for

from app.inputs.pagination import decode_cursor, encode_cursor
from app.pages import bp
from app.pages.live import feed_resume_point
from app.pages.viewer import current_viewer, signed_in
from app.serializers import posts_json, user_json
from app.services import follows, posts
from app.services.lookup import get_user

PAGE_SIZE = 20


@bp.get("/u/<username>")
@signed_in
def profile(username):
    """Show a user and their posts, newest first."""
    viewer = current_viewer()
    person = get_user(username)
    # The viewer's feed carries the events of this profile's posts when the viewer follows them.
    last_event_id = feed_resume_point(viewer.id)
    rows, cursor = posts.user_posts_page(person.id, PAGE_SIZE,
                                         decode_cursor(request.args.get("before"), "before"))
    return render_template("pages/profile.html", person=user_json(person, viewer.id),
                           posts=posts_json(rows, viewer.id), next_before=encode_cursor(cursor),
                           last_event_id=last_event_id, paged=bool(request.args.get("before")))


@bp.post("/u/<username>/follow")
@signed_in
def follow(username):
    """Follow a user."""
    person = get_user(username)
    follows.follow(current_viewer().id, person)
    return redirect(url_for("pages.profile", username=person.username))


@bp.post("/u/<username>/unfollow")
@signed_in
def unfollow(username):
    """Stop following a user."""
    person = get_user(username)
    follows.unfollow(current_viewer().id, person)
    return redirect(url_for("pages.profile", username=person.username))

"""The notifications page (grouped, marked read as they are shown) and the service worker."""
from flask import current_app, render_template, request, send_from_directory, url_for

from app.inputs.pagination import decode_cursor, encode_cursor
from app.pages import bp
from app.pages import live
from app.pages.viewer import current_viewer, signed_in
from app.services import notifications
from app.services.notifications import COMMENT, COMMENT_LIKE, FOLLOW, REACTION

PAGE_SIZE = 50


def _group_key(item):
    """Return what makes notifications one line: the same kind about the same post or
    comment (all follows together); a mention is always a line of its own."""
    kind = item["type"]
    if kind == FOLLOW:
        return (kind,)
    if kind in (REACTION, COMMENT):
        return (kind, item["post_id"])
    if kind == COMMENT_LIKE:
        return (kind, item["comment_id"])
    return (kind, item["id"])


def group(items):
    """Return the lines of a page of ``Notification`` objects (newest first): each with the
    sentence of its newest notification and how many other people did the same, its link,
    time, ids, and whether any of it is unread."""
    lines, by_key = [], {}
    for item in items:
        line = by_key.get(_group_key(item))
        if line is None:
            line = by_key[_group_key(item)] = {"latest": item, "actors": [], "ids": [],
                                               "unread": False}
            lines.append(line)
        if item["actor"]["id"] not in line["actors"]:
            line["actors"].append(item["actor"]["id"])
        line["ids"].append(item["id"])
        line["unread"] = line["unread"] or not item["read"]
    return [{"type": line["latest"]["type"], "ids": line["ids"], "unread": line["unread"],
             "text": notifications.describe(line["latest"], len(line["actors"]) - 1),
             "url": notifications.link(line["latest"]),
             "created_at": line["latest"]["created_at"]} for line in lines]


@bp.get("/notifications")
@signed_in
def notifications_page():
    """Show the viewer's notifications, grouped, and mark the ones shown read."""
    viewer = current_viewer()
    rows, cursor = notifications.notifications_page(
        viewer.id, PAGE_SIZE, decode_cursor(request.args.get("before"), "before"))
    items = [notifications.notification_json(row) for row in rows]
    notifications.mark_read(viewer.id, [item["id"] for item in items])
    older = url_for("pages.notifications_page", before=encode_cursor(cursor)) if cursor else None
    return render_template("pages/notifications.html", groups=group(items), older=older,
                           push_enabled=current_app.extensions.get("vapid") is not None)


@bp.get("/sw.js")
def service_worker():
    """Serve the service worker from the root, so that its scope is the whole site."""
    response = send_from_directory(current_app.static_folder, "sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"  # browsers check it for updates
    return response


@bp.app_context_processor
def notifications_context():
    """Give the header the viewer's unread count, and where the badge's own feed stream
    resumes on pages whose live channel is not the feed (functions: only pages that show
    the header call them)."""
    def unread_notifications():
        viewer = current_viewer()
        return notifications.unread_count(viewer.id) if viewer is not None else 0

    def feed_resume_point():
        viewer = current_viewer()
        return live.feed_resume_point(viewer.id) if viewer is not None else ""
    return {"unread_notifications": unread_notifications, "feed_resume_point": feed_resume_point}

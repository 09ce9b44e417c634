"""What every page template shares: reaction labels, time format, and blank rows that the
browser client clones to render live posts and comments with the server's own markup."""
from datetime import datetime

from app.models import REACTION_TYPES
from app.pages import bp

REACTION_LABELS = {"like": "Like", "love": "Love", "haha": "Haha", "wow": "Wow", "sad": "Sad",
                   "angry": "Angry"}
# Placeholders the client replaces in the blank rows' markup (ids and names in URLs and
# element ids); see static/js/render.js. Real ids are UUIDs and names are [A-Za-z0-9_].
ID_MARK, USERNAME_MARK = "__ID__", "__USERNAME__"


@bp.app_template_filter("when")
def when(iso):
    """Format an ISO 8601 UTC time as ``2026-01-02 15:04 UTC`` (render.js does the same)."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _blank_author():
    return {"id": "", "username": USERNAME_MARK, "display_name": ""}


@bp.context_processor
def templating_context():
    """Give templates the reaction types and labels, and the blank post and comment."""
    blank_post = {"id": ID_MARK, "author": _blank_author(), "content": "", "created_at": "",
                  "updated_at": "", "reaction_counts": dict.fromkeys(REACTION_TYPES, 0),
                  "comment_count": 0, "my_reaction": None}
    blank_comment = {"id": ID_MARK, "post_id": "", "author": _blank_author(), "content": "",
                     "created_at": "", "like_count": 0}
    return {"reaction_types": REACTION_TYPES, "reaction_labels": REACTION_LABELS,
            "blank_post": blank_post, "blank_comment": blank_comment}

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


AVATAR_HUES = 12  # app.css has a colour for each


@bp.app_template_filter("avatar_hue")
def avatar_hue(username):
    """Return the avatar colour slot (0–11) of *username*: FNV-1a 32 over its lower-case
    bytes, as render.js computes it for posts that arrive live."""
    value = 0x811C9DC5
    for byte in username.lower().encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % AVATAR_HUES


@bp.app_template_filter("initials")
def initials(display_name, username=""):
    """Return up to two initials of a display name, upper-case (render.js agrees)."""
    letters = "".join(word[0] for word in display_name.split()[:2])
    return (letters or username[:1] or "?").upper()


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

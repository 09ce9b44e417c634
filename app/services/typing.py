"""Typing announcements: ephemeral events on a post's channel."""
from app.events import schema
from app.events.channels import post_channel
from app.serializers import author_json
from app.services import notify
from app.services.lookup import get_post


def announce_typing(user, post_id):
    """Tell everyone on the post that *user* is typing (no id, no history, never replayed)."""
    post = get_post(post_id)
    notify.publish([post_channel(post.id)], schema.Event(
        schema.TYPING, {"post_id": post.id, "user": author_json(user)}))

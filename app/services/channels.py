"""Which channel a stream request may open."""
from app.errors import NotFound
from app.events.channels import FEED, POST, feed_channel, post_channel
from app.services.lookup import existing_post_id


def authorize_channel(user_id, kind, key=None):
    """Return the channel of kind *kind* the user may open.

    ``feed`` is always the user's own feed; ``post`` needs an existing post *key* (404).
    """
    if kind == FEED:
        return feed_channel(user_id)
    if kind == POST:
        return post_channel(existing_post_id(key))
    raise NotFound("no such channel")

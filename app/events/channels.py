"""Channel names and the fan-out rules of the contract."""
from app.events.schema import NEW_POST

FEED = "feed"
POST = "post"
# The one channel of every large author's events (app/broker/authors.py): no client opens it;
# feed streams whose reader follows a large author read it beside their own feed.
LARGE = "large"


def feed_channel(user_id):
    """Return the feed channel of a user: posts by them and by whom they follow."""
    return f"{FEED}:{user_id}"


def post_channel(post_id):
    """Return the channel of one post: its edits, reactions and comments."""
    return f"{POST}:{post_id}"


def channel_kind(channel):
    """Return ``feed`` or ``post`` for a channel name."""
    return channel.split(":", 1)[0]


def feed_channels(author_id, follower_ids):
    """Return the feeds an event of *author_id*'s goes to: the author's, then each follower's."""
    channels = [feed_channel(author_id)]
    channels.extend(feed_channel(uid) for uid in follower_ids if uid != author_id)
    return channels


def post_event_channels(event_type, post_id):
    """Return the channels of an event about a post besides the feeds: the post's own,
    for every event except ``new_post``.

    The feeds are the author's and those of everyone following the author when it is sent
    (:mod:`app.services.audience`).
    """
    return [] if event_type == NEW_POST else [post_channel(post_id)]

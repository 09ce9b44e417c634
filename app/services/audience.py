"""Large authors: who they are, and how their events reach their followers.

An author with ``LARGE_AUTHOR_FOLLOWERS`` followers or more is *large*: each of their events is
published once, on the large-author channel (:mod:`app.broker.authors`), instead of once to
every follower's feed, so a post costs the same for a million followers as for a thousand.
Below half the threshold an author is small again (an author near it does not flip with every
follow). Whether an author is large is a column, kept by follow and unfollow with a count that
stops at the threshold: never a count of all followers.

A feed stream reads the large authors its reader follows beside its own feed. When a reader
follows or unfollows a large author, or an author they follow becomes large, a ``_follows``
entry on the reader's feed tells that reader's open streams, on every worker, at once; it says
where in the large-author channel to catch up from, so nothing published meanwhile is missed.
The same publish keeps the set in the feed's marks, which a stream's open reads with the
feed's head: no SQL for it, except when the feed's metadata is new.
"""
import dataclasses
import logging

from flask import current_app
from sqlalchemy import func, select, update

from app.broker.extension import current_broker
from app.events import schema
from app.events.channels import LARGE, feed_channel, feed_channels
from app.extensions import db
from app.models import Follow, User
from app.services import notify

log = logging.getLogger(__name__)


def threshold():
    """Return the follower count from which an author is large."""
    return current_app.config["LARGE_AUTHOR_FOLLOWERS"]


def is_large(author_id):
    """Return whether *author_id*'s events go to the large-author channel."""
    return bool(db.session.scalar(select(User.large_author).where(User.id == author_id)))


def follows(reader_id, author_id):
    """Return whether *reader_id* follows *author_id* now."""
    return db.session.scalar(select(Follow.follower_id).where(
        Follow.follower_id == reader_id, Follow.followee_id == author_id)) is not None


def start_over(reader_id):
    """Start the reader's feed over: its streams resync, and the next open looks up whom
    they follow (when an entry could not say where to catch up from)."""
    current_broker().restart(feed_channel(reader_id))


def large_followees(user_id):
    """Return the large authors *user_id* follows (their events reach the feed by the channel)."""
    return list(db.session.scalars(
        select(Follow.followee_id).join(User, User.id == Follow.followee_id)
        .where(Follow.follower_id == user_id, User.large_author)))


def _followers_up_to(author_id, limit):
    """Return the number of *author_id*'s followers, counting no further than *limit*."""
    some = select(Follow.follower_id).where(Follow.followee_id == author_id).limit(limit)
    return db.session.scalar(select(func.count()).select_from(some.subquery()))


def threshold_reached(author_id):
    """Return whether *author_id* has the threshold's number of followers (or more)."""
    limit = threshold()
    return _followers_up_to(author_id, limit) >= limit


def below_half(author_id):
    """Return whether *author_id* has fewer than half the threshold's followers."""
    half = threshold() // 2
    return _followers_up_to(author_id, half) < half


def mark_large(author, large):
    """Make *author* large or small, in the open transaction; return True when it changed.

    A conditional update, so that of two follows crossing the threshold at once only one
    announces it.
    """
    changed = db.session.execute(update(User).where(
        User.id == author.id, User.large_author.is_not(large)).values(large_author=large)).rowcount
    if changed:
        log.info("author %s is now %s", author.id, "large" if large else "small")
    return bool(changed)


def large_head():
    """Return the large-author channel's head, read before a commit that changes who reads it:
    whatever is published after that commit is after this place.

    :raises BrokerUnavailable: when the broker cannot say; the change must then wait, since
        the entry that would carry the place could not be published either.
    """
    return current_broker().read(LARGE).head


def _entry(author_id, following, since):
    payload = {"author": author_id, "following": following}
    if since is not None:
        payload["since"] = since.event_id
    return schema.Event(schema.FOLLOWS_CHANGED, payload)


def announce_follow(reader_id, author_id, following, since=None):
    """Tell *reader_id*'s feed, and its open streams, that they now follow (or no longer
    follow) a large author: the feed's marks change with the entry. Return False when the
    broker was away (it starts the feed over once back)."""
    return notify.publish([feed_channel(reader_id)], _entry(author_id, following, since),
                          ("+" if following else "-") + author_id)


def announce_large(author_id, since):
    """Tell the open streams of everyone following *author_id* that the author became large.

    Their events from now on come by the large-author channel: one entry per follower's feed,
    once (cold feeds are skipped, as for any event). Return False when the broker was away.
    """
    before = follower_ids(author_id)
    told = notify.publish([feed_channel(uid) for uid in before], _entry(author_id, True, since),
                          "+" + author_id)
    # An unfollow committed after that list was read, and announced before the entries above,
    # would be undone by them: look again, and say it again to those who left. (An unfollow
    # committed later announces itself after these.)
    left = before - follower_ids(author_id)
    for reader_id in left:
        told = announce_follow(reader_id, author_id, False) and told
    return told


def follower_ids(author_id):
    """Return the ids of *author_id*'s followers."""
    query = select(Follow.follower_id).where(Follow.followee_id == author_id)
    return set(db.session.scalars(query))


def publish_to_followers(author_id, event, channels=(), large=None, once=None):
    """Publish *event* of *author_id*'s to their feed, their followers' and *channels*.

    A small author's event goes to each follower's feed; a large author's goes once, to the
    large-author channel, carrying the author for the workers to route it by.

    :param large: whether the author is large, when already read (None: read it now).
    :param once: the event's once-id on the large-author channel (the outbox's).
    :returns: False when the broker was away.
    """
    large = is_large(author_id) if large is None else large
    followers = () if large else follower_ids(author_id)
    published = notify.publish(feed_channels(author_id, followers) + list(channels), event)
    return (publish_large(author_id, event, once) and published) if large else published


def publish_large(author_id, event, once=None):
    """Publish *event* of large author *author_id*'s on the large-author channel; return False
    when the broker was away."""
    return notify.publish([LARGE], dataclasses.replace(event, author=author_id), once=once)

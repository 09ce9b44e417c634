"""Notifications: stored in the transaction of the write that causes them, announced after it
commits on the recipient's feed channel, and pushed to their browsers when no page is open.

A write calls one of the ``on_*`` functions before its commit; each returns what it added
(nothing for one's own action, or for news already told), and the write passes that to
:func:`announce` after the commit. What it added includes an outbox row for the recipients'
feeds (:mod:`app.services.outbox`): a worker stopped before the announcement leaves the row,
and the relay starts those feeds over, so their pages resync and read the unread count again.

Each notification has a ``dedupe_key`` naming the news it tells, unique in the table: a
reaction notifies once per person per post (changing it, or removing it and reacting again,
tells nothing new), a comment like once per person per comment, a follow once per pair, a
mention once per person per post or comment (editing a post notifies only the newly mentioned).
"""
import re
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update

from app.events import schema
from app.events.channels import feed_channel
from app.extensions import db
from app.models import Notification, User
from app.models.base import new_id, utcnow
from app.push import sender
from app.serializers import author_json, timestamp
from app.services import notify, outbox
from app.services.upsert import insert

FOLLOW, COMMENT, REACTION, COMMENT_LIKE, MENTION = (
    "follow", "comment", "reaction", "comment_like", "mention")
#: At most this many people are notified of one post's or comment's mentions.
MAX_MENTIONS = 20
# "@name" not inside a word or an e-mail address ("bob@example" mentions nobody).
_MENTION = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{3,30})(?![A-Za-z0-9_])")


@dataclass(frozen=True)
class Added:
    """Notifications added by a write, and the outbox row committed with them."""

    staged: outbox.Staged
    ids: list


def _record(actor_id, rows):
    """Insert *rows* (recipient, type, post, comment, key) unless they are the actor's own or
    their key was told before; return ``[Added]`` (empty when none was inserted)."""
    now = utcnow()
    values = [{"id": new_id(), "user_id": user_id, "actor_id": actor_id, "type": type_,
               "post_id": post_id, "comment_id": comment_id, "dedupe_key": key,
               "created_at": now, "read": False}
              for user_id, type_, post_id, comment_id, key in rows if user_id != actor_id]
    if not values:
        return []
    statement = (insert(Notification).values(values)
                 .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
                 .returning(Notification.id, Notification.user_id))
    inserted = db.session.execute(statement).all()
    if not inserted:
        return []
    channels = sorted({feed_channel(user_id) for _, user_id in inserted})
    return [Added(outbox.stage(schema.NOTIFICATION, {}, channels), [id_ for id_, _ in inserted])]


def on_follow(actor_id, user_id):
    """Tell *user_id* that *actor_id* follows them (call only when the follow is new)."""
    return _record(actor_id, [(user_id, FOLLOW, None, None, f"follow:{actor_id}:{user_id}")])


def on_reaction(actor_id, post):
    """Tell the post's author of a reaction: once per person per post, whatever its type."""
    return _record(actor_id, [(post.author_id, REACTION, post.id, None,
                               f"reaction:{actor_id}:{post.id}")])


def on_comment_like(actor_id, comment):
    """Tell a comment's author that *actor_id* likes it: once per person per comment."""
    return _record(actor_id, [(comment.author_id, COMMENT_LIKE, comment.post_id, comment.id,
                               f"comment_like:{actor_id}:{comment.id}")])


def on_comment(actor_id, post, comment):
    """Tell the post's author of a new comment, and the people it mentions."""
    ids = _record(actor_id, [(post.author_id, COMMENT, post.id, comment.id,
                              f"comment:{comment.id}")])
    # The post's author already hears of the comment itself.
    return ids + on_mentions(actor_id, comment.content, post.id, comment.id,
                             skip={post.author_id})


def on_mentions(actor_id, text, post_id, comment_id=None, skip=()):
    """Tell each existing user named as ``@username`` in *text* (a post, or a comment of it)."""
    names = list(dict.fromkeys(name.lower() for name in _MENTION.findall(text)))[:MAX_MENTIONS]
    if not names:
        return []
    mentioned = db.session.scalars(select(User.id).where(User.username_key.in_(names)))
    where = comment_id or post_id
    return _record(actor_id, [(user_id, MENTION, post_id, comment_id,
                               f"mention:{user_id}:{where}")
                              for user_id in mentioned if user_id not in skip])


def notification_json(row):
    """Return the contract's ``Notification`` object of a row."""
    data = {"id": row.id, "type": row.type, "actor": author_json(row.actor)}
    if row.post_id:
        data["post_id"] = row.post_id
    if row.comment_id:
        data["comment_id"] = row.comment_id
    data.update(created_at=timestamp(row.created_at), read=row.read)
    return data


def unread_counts(user_ids):
    """Return ``{user_id: number of unread notifications}`` in one query."""
    counts = dict.fromkeys(user_ids, 0)
    if counts:
        counts.update(db.session.execute(
            select(Notification.user_id, func.count())
            .where(Notification.user_id.in_(list(counts)), Notification.read.is_(False))
            .group_by(Notification.user_id)).all())
    return counts


def unread_count(user_id):
    """Return the number of *user_id*'s unread notifications."""
    return unread_counts([user_id])[user_id]


def announce(added):
    """Publish each committed notification of *added* (what the ``on_*`` functions returned)
    with its recipient's unread count, and have it pushed to their browsers if they have no
    page open (after the response)."""
    for each in added:
        rows = db.session.scalars(select(Notification).where(Notification.id.in_(each.ids))
                                  .order_by(Notification.created_at, Notification.id)).all()
        unread = unread_counts({row.user_id for row in rows})
        # Plain values: the send may commit, which expires the rows.
        told = [(row.user_id, notification_json(row)) for row in rows]
        outbox.send(each.staged, {}, publish=lambda: _publish(told, unread))
        for user_id, data in told:
            # What static/sw.js shows: the sentence, and the page a click opens.
            sender.push_later(user_id, {
                "title": "Realtime feed", "body": describe(data), "url": link(data),
                "tag": data["id"], "notification": data, "unread": unread[user_id]})


def _publish(told, unread):
    """Publish each ``(recipient, notification JSON)`` of *told* on the recipient's feed;
    return False when the broker was away."""
    published = True
    for user_id, data in told:
        event = schema.Event(schema.NOTIFICATION, {"notification": data, "unread": unread[user_id]})
        if not notify.publish([feed_channel(user_id)], event):
            published = False
    return published


def notifications_page(user_id, limit, before=None):
    """Return *user_id*'s notifications newest first before the cursor, and the next cursor."""
    query = select(Notification).where(Notification.user_id == user_id)
    if before is not None:
        created_at, row_id = before
        query = query.where(or_(Notification.created_at < created_at,
                                and_(Notification.created_at == created_at,
                                     Notification.id < row_id)))
    rows = list(db.session.scalars(
        query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1].created_at, rows[-1].id) if more else None)


def mark_read(user_id, ids=None):
    """Mark *user_id*'s notifications among *ids* read, or all of them when *ids* is None;
    ids of others' notifications, or of none, are ignored. Return the unread count."""
    statement = update(Notification).where(Notification.user_id == user_id,
                                           Notification.read.is_(False))
    if ids is not None:
        statement = statement.where(Notification.id.in_(ids))
    if ids is None or ids:
        db.session.execute(statement.values(read=True))
        db.session.commit()
    return unread_count(user_id)


_PHRASES = {FOLLOW: "started following you", COMMENT: "commented on your post",
            REACTION: "reacted to your post", COMMENT_LIKE: "liked your comment",
            MENTION: "mentioned you"}


def describe(notification, others=0):
    """Return a sentence for a ``Notification`` object: "Alice (@alice) liked your comment",
    or with *others* people more, "Alice (@alice) and 3 others reacted to your post"."""
    actor = notification["actor"]
    # The @username beside the display name: a look-alike name cannot pass as someone else.
    who = f"{actor['display_name']} (@{actor['username']})"
    if others:
        who += f" and {others} other{'s' if others > 1 else ''}"
    return f"{who} {_PHRASES[notification['type']]}"


def link(notification):
    """Return the page a ``Notification`` object leads to."""
    if notification["type"] == FOLLOW:
        return f"/u/{notification['actor']['username']}"
    anchor = f"#comment-{notification['comment_id']}" if notification.get("comment_id") else ""
    return f"/post/{notification['post_id']}{anchor}"

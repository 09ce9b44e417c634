"""The JSON shapes of the contract, shared by REST answers and event payloads.

List serializers take whole pages and fetch their counts in a constant number of queries.
"""
from app import counts
from app.models import REACTION_TYPES


def timestamp(value):
    """Return an aware datetime as ISO 8601 in UTC with a ``Z``."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def author_json(user):
    """Return the short form of a user that posts, comments and typing events carry."""
    return {"id": user.id, "username": user.username, "display_name": user.display_name}


def users_json(users, viewer_id=None):
    """Return the ``User`` objects of *users*; with a viewer, also ``is_following``."""
    ids = [u.id for u in users]
    stats = counts.follow_counts(ids)
    followed = counts.followed_by_viewer(ids, viewer_id)
    result = []
    for user in users:
        followers, following = stats[user.id]
        item = {**author_json(user), "created_at": timestamp(user.created_at),
                "followers_count": followers, "following_count": following}
        if viewer_id is not None:
            item["is_following"] = user.id in followed
        result.append(item)
    return result


def user_json(user, viewer_id=None):
    """Return one ``User``."""
    return users_json([user], viewer_id)[0]


def reaction_data(reaction_counts):
    """Return ``{"counts": {…all six…}, "total": n}``."""
    full = {t: reaction_counts.get(t, 0) for t in REACTION_TYPES}
    return {"counts": full, "total": sum(full.values())}


def posts_json(posts, viewer_id=None, with_my_reaction=True):
    """Return the ``Post`` objects of a page of posts.

    :param viewer_id: whose ``my_reaction`` to include (REST answers).
    :param with_my_reaction: False for event payloads, which every viewer shares.
    """
    ids = [p.id for p in posts]
    reactions = counts.reaction_counts(ids)
    comments = counts.comment_counts(ids)
    mine = counts.viewer_reactions(ids, viewer_id) if with_my_reaction else {}
    result = []
    for post in posts:
        item = _post_item(post, reactions[post.id], comments[post.id])
        if with_my_reaction:
            item["my_reaction"] = mine.get(post.id)
        result.append(item)
    return result


def post_json(post, viewer_id=None, with_my_reaction=True):
    """Return one ``Post``."""
    return posts_json([post], viewer_id, with_my_reaction)[0]


def new_post_json(post):
    """Return the ``Post`` of a post just created, without ``my_reaction``: nobody has
    reacted to it or commented on it yet, so no count is read."""
    return _post_item(post, dict.fromkeys(REACTION_TYPES, 0), 0)


def _post_item(post, reaction_counts, comment_count):
    return {"id": post.id, "author": author_json(post.author), "content": post.content,
            "created_at": timestamp(post.created_at), "updated_at": timestamp(post.updated_at),
            "reaction_counts": reaction_counts, "comment_count": comment_count}


def comments_json(comments):
    """Return the ``Comment`` objects of a page of comments."""
    likes = counts.like_counts([c.id for c in comments])
    return [_comment_item(c, likes[c.id]) for c in comments]


def new_comment_json(comment):
    """Return the ``Comment`` of a comment just created: nobody has liked it yet."""
    return _comment_item(comment, 0)


def _comment_item(comment, like_count):
    return {"id": comment.id, "post_id": comment.post_id, "author": author_json(comment.author),
            "content": comment.content, "created_at": timestamp(comment.created_at),
            "like_count": like_count}

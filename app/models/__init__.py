"""The social graph's tables: columns, relationships and invariants only."""
from app.models.comment import Comment, CommentLike
from app.models.follow import Follow
from app.models.idempotency import IdempotencyKey
from app.models.notification import NOTIFICATION_TYPES, Notification, PushSubscription
from app.models.outbox import OutboxEntry
from app.models.post import Post
from app.models.reaction import REACTION_TYPES, Reaction
from app.models.tokens import RevokedSession, StreamTicket, UsedRefreshToken
from app.models.user import User

__all__ = ["Comment", "CommentLike", "Follow", "IdempotencyKey", "NOTIFICATION_TYPES",
           "Notification", "OutboxEntry", "Post", "PushSubscription", "REACTION_TYPES", "Reaction",
           "RevokedSession", "StreamTicket", "UsedRefreshToken", "User"]

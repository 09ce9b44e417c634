"""Request and response schemas: they validate requests and generate the OpenAPI document."""
import unicodedata
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models import REACTION_TYPES

ReactionType = Literal[REACTION_TYPES]  # type: ignore[valid-type]


class Body(BaseModel):
    """A JSON request body: strict types (no "1" for 1), unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @field_validator("*")
    @classmethod
    def no_nul_characters(cls, value):
        # PostgreSQL cannot store U+0000 in text: refuse it on every database alike.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ContentBody(Body):
    """A body whose ``content`` must hold more than white space."""

    @field_validator("content", check_fields=False)
    @classmethod
    def content_not_blank(cls, value):
        if not value.strip():
            raise ValueError("must not be blank")
        return value


# Controls (Cc), format characters (Cf: bidi overrides such as U+202E, zero-width spaces and
# joiners, soft hyphens) and line or paragraph separators: invisible, or they reorder or
# break the text around them, so a display name holding one could read as someone else's.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def _visible(value):
    """Return *value*, or raise ValueError when it holds a control or format character."""
    if value is not None and any(unicodedata.category(c) in _HIDDEN_CATEGORIES for c in value):
        raise ValueError("must not contain control, format or invisible characters")
    return value


class RegisterIn(Body):
    username: str = Field(pattern=r"^[A-Za-z0-9_]{3,30}$",
                          json_schema_extra={"rule": "must be 3 to 30 letters, digits or _"})
    password: str = Field(min_length=8, max_length=128,
                          json_schema_extra={"rule": "must be 8 to 128 characters"})
    display_name: Optional[str] = Field(None, min_length=1, max_length=50, json_schema_extra={
        "rule": "must be 1 to 50 characters, without control or format characters"})

    _visible_display_name = field_validator("display_name")(_visible)


class LoginIn(Body):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class PostIn(ContentBody):
    content: str = Field(min_length=1, max_length=5000,
                         json_schema_extra={"rule": "must be 1 to 5000 characters"})


class CommentIn(ContentBody):
    content: str = Field(min_length=1, max_length=2000,
                         json_schema_extra={"rule": "must be 1 to 2000 characters"})


class ReactionIn(Body):
    type: ReactionType = Field(json_schema_extra={"rule": "must be one of " + ", ".join(REACTION_TYPES)})


class PageQuery(BaseModel):
    """``?limit=&before=`` of newest-first lists."""

    limit: int = Field(20, ge=1, le=100, json_schema_extra={"rule": "must be 1 to 100"})
    before: Optional[str] = Field(None, max_length=200)


class CommentPageQuery(BaseModel):
    """``?limit=&after=`` of oldest-first comment lists."""

    limit: int = Field(20, ge=1, le=100, json_schema_extra={"rule": "must be 1 to 100"})
    after: Optional[str] = Field(None, max_length=200)


# -- responses (documentation only: the serializers build them) ---------------------------------

class AuthorOut(BaseModel):
    id: str
    username: str
    display_name: str


class UserOut(AuthorOut):
    created_at: str
    followers_count: int
    following_count: int
    is_following: Optional[bool] = None


class ReactionCounts(BaseModel):
    like: int
    love: int
    haha: int
    wow: int
    sad: int
    angry: int


class PostOut(BaseModel):
    id: str
    author: AuthorOut
    content: str
    created_at: str
    updated_at: str
    reaction_counts: ReactionCounts
    comment_count: int
    my_reaction: Optional[ReactionType] = None


class CommentOut(BaseModel):
    id: str
    post_id: str
    author: AuthorOut
    content: str
    created_at: str
    like_count: int


class AuthOut(BaseModel):
    user: UserOut
    access_token: str
    refresh_token: str


class RefreshOut(BaseModel):
    access_token: str
    refresh_token: str


class TicketOut(BaseModel):
    ticket: str
    expires_in: int


class MessageOut(BaseModel):
    message: str


class FollowOut(BaseModel):
    following: bool


class PostPage(BaseModel):
    posts: list[PostOut]
    next_before: Optional[str]


class CommentPage(BaseModel):
    comments: list[CommentOut]
    next_after: Optional[str]


class ReactionData(BaseModel):
    counts: ReactionCounts
    total: int


class ReactionOut(BaseModel):
    post_id: str
    reaction_data: ReactionData


class CommentLikeOut(BaseModel):
    comment_id: str
    post_id: str
    like_count: int
    liked: bool


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: Optional[dict[str, str]] = None


class ErrorOut(BaseModel):
    error: ErrorBody


# -- notifications and Web Push -------------------------------------------------------------------

class NotificationsReadIn(Body):
    """``{"ids": [...]}`` or ``{"all": true}``: which notifications to mark read."""

    ids: Optional[list[str]] = Field(None, max_length=100, json_schema_extra={
        "rule": "must be a list of at most 100 notification ids"})
    all: Optional[bool] = Field(None, json_schema_extra={"rule": "must be true or false"})


class PushKeysIn(Body):
    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)


class PushSubscriptionIn(Body):
    """A browser's ``PushSubscription.toJSON()``; ``expirationTime`` is ignored."""

    endpoint: str = Field(min_length=1, max_length=2048,
                          json_schema_extra={"rule": "must be an https URL of a push service"})
    keys: PushKeysIn


class PushEndpointIn(Body):
    endpoint: str = Field(min_length=1, max_length=2048)


class NotificationOut(BaseModel):
    id: str
    type: Literal["follow", "comment", "reaction", "comment_like", "mention"]
    actor: AuthorOut
    post_id: Optional[str] = None
    comment_id: Optional[str] = None
    created_at: str
    read: bool


class NotificationPage(BaseModel):
    notifications: list[NotificationOut]
    next_before: Optional[str]
    unread: int


class UnreadOut(BaseModel):
    unread: int


class PublicKeyOut(BaseModel):
    public_key: str

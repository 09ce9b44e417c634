"""The JSON API under ``/api``: users, follows, the feed, posts, reactions, comments,
notifications and Web Push subscriptions."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import comments, docs, notifications, posts, users  # noqa: E402,F401  (routes)

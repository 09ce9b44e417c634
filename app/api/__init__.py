"""The JSON API under ``/api``: users, follows, the feed, posts, reactions and comments."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import comments, docs, posts, users  # noqa: E402,F401  (register the routes)

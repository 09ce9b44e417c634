"""Server-rendered pages for people, on the same origin as the API.

Every form posts to a page route and redirects, so reading and writing work without
JavaScript; ``static/js`` adds live updates on top. Pages authenticate with the HttpOnly
access-token cookie and check CSRF with the form's hidden ``csrf_token`` field.
"""
from flask import Blueprint

bp = Blueprint("pages", __name__)

# Each module registers its routes, error handlers or template helpers on bp.
from app.pages import (  # noqa: E402,F401
    account, console, errors, feed, guard, notifications, posts, templating, users, viewer,
)

"""Sign-up, sign-in, tokens (header, cookie, query on streams), logout and stream tickets."""
from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/api/auth")

from app.auth import routes  # noqa: E402,F401  (registers the routes on bp)

"""Server-rendered pages for people, on the same origin as the API."""
from flask import Blueprint

bp = Blueprint("pages", __name__)

from app.pages import routes  # noqa: E402,F401  (registers the routes on bp)

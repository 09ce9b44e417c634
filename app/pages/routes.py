"""The pages: a welcome page until the full pages land."""
from flask import render_template

from app.pages import bp


@bp.get("/")
def index():
    """Show the welcome page."""
    return render_template("pages/welcome.html")

"""``/realtime``: a console to open any channel over any transport and watch raw events."""
from flask import render_template

from app.pages import bp


@bp.get("/realtime")
def realtime():
    """Show the console; it connects with the session cookie or a pasted access token."""
    return render_template("pages/realtime.html")

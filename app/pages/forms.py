"""Read page forms with the API's own schemas, so a form and a JSON body obey one rule."""
from flask import flash, request

from app.errors import ApiError
from app.inputs.validation import validate


def read_content(model):
    """Return the form's ``content`` validated by *model* (``PostIn``, ``CommentIn``).

    On a problem, flash its message for the page the form redirects to and return None.
    """
    try:
        return validate(model, {"content": request.form.get("content", "")}).content
    except ApiError as error:
        flash(error.message, "error")
        return None

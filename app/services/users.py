"""Accounts: registration and sign-in."""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict, Unauthorized
from app.extensions import db
from app.models import User


def register(username, password, display_name=None):
    """Create an account; raise :class:`Conflict` when the name is taken in any case."""
    if db.session.scalar(select(User.id).where(User.username_key == username.lower())):
        raise Conflict("username already taken")
    user = User(username, password, display_name)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # registered by someone else since the check above
        db.session.rollback()
        raise Conflict("username already taken") from None
    return user


def authenticate(username, password):
    """Return the user whose name and password match; raise 401 ``invalid_credentials``."""
    user = db.session.scalar(select(User).where(User.username_key == username.lower()))
    if user is None:
        User.burn_password_check(password)
    elif user.check_password(password):
        db.session.commit()  # a rehashed password, if any
        return user
    raise Unauthorized("wrong username or password", code="invalid_credentials")

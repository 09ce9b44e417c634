"""Accounts: registration and sign-in."""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import guessing, passwords
from app.errors import Conflict, Unauthorized
from app.extensions import db
from app.models import User


def register(username, password, display_name=None):
    """Create an account; raise :class:`Conflict` when the name is taken in any case."""
    # Hashed before any query, so no database connection is held while it waits for the hash.
    password_hash = passwords.hash_password(password)
    if db.session.scalar(select(User.id).where(User.username_key == username.lower())):
        raise Conflict("username already taken")
    user = User(username, password_hash, display_name)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # registered by someone else since the check above
        db.session.rollback()
        raise Conflict("username already taken") from None
    return user


def authenticate(username, password):
    """Return the user whose name and password match.

    :raises Unauthorized: 401 ``invalid_credentials``, the same whether or not the user exists.
    :raises RateLimited: 429 while the username backs off after failed attempts (no hash done).
    """
    guessing.check(username)
    found = db.session.execute(select(User.id, User.password_hash)
                               .where(User.username_key == username.lower())).first()
    # Give the connection back before the hash: sign-ins waiting for a hashing thread must
    # not hold the pool's connections.
    db.session.rollback()
    if found is None:
        passwords.burn_password_check(password)
    else:
        matches, new_hash = passwords.verify_password(found.password_hash, password)
        if matches:
            user = db.session.get(User, found.id)
            if new_hash:  # the configured cost changed since this hash was made
                user.password_hash = new_hash
                db.session.commit()
            guessing.succeeded(username)
            return user
    guessing.failed(username)
    raise Unauthorized("wrong username or password", code="invalid_credentials")

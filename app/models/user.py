"""Users: UUID ids, usernames unique without regard to case, Argon2 password hashes."""
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, new_id, utcnow

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a login takes as long either way.
_dummy_hash = _hasher.hash("not a real password")


def configure_hashing(time_cost, memory_kib):
    """Set Argon2's cost (``PASSWORD_HASH_TIME_COST``, ``PASSWORD_HASH_MEMORY_KIB``).

    Existing hashes keep verifying whatever the cost; they are rehashed at the next sign-in.
    """
    global _hasher, _dummy_hash
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _dummy_hash = _hasher.hash("not a real password")


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(30))
    # Lower-cased copy with the unique index: "Alice" and "alice" are one account.
    username_key: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __init__(self, username, password, display_name=None):
        super().__init__(username=username, username_key=username.lower(),
                         display_name=display_name or username)
        self.password_hash = _hasher.hash(password)

    def check_password(self, password):
        """Return whether *password* matches, rehashing when the parameters changed."""
        try:
            _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if _hasher.check_needs_rehash(self.password_hash):
            self.password_hash = _hasher.hash(password)
        return True

    @staticmethod
    def burn_password_check(password):
        """Spend the time of a password check when there is no user to check against."""
        try:
            _hasher.verify(_dummy_hash, password)
        except VerificationError:
            pass

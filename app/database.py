"""Database set-up: Flask-SQLAlchemy, Flask-Migrate, and SQLite's foreign keys."""
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import engine_options
from app.extensions import db, migrate
from app.auth import passwords


def init_app(app):
    """Bind the database and migrations to *app*.

    Reads ``SQLALCHEMY_DATABASE_URI``; for PostgreSQL ``DB_POOL_SIZE``, ``DB_MAX_OVERFLOW``
    and ``DB_POOL_TIMEOUT``; and the password hashing cost.
    """
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    db.init_app(app)
    passwords.configure(app.config["PASSWORD_HASH_TIME_COST"],
                        app.config["PASSWORD_HASH_MEMORY_KIB"],
                        app.config["PASSWORD_HASH_CONCURRENCY"])
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection, _record):
    """Make SQLite enforce foreign keys, so deleting a post deletes its comments."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

"""Database set-up: Flask-SQLAlchemy, Flask-Migrate, and SQLite's foreign keys and writers."""
from gevent.lock import Semaphore
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

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


# SQLite lets one writer in at a time, and a writer that finds the database locked waits in
# C, blocking every greenlet of its process. A request that yields while its write
# transaction is open (a Redis call between a flush and the commit) would then hold the lock
# while the greenlet waiting for it holds the event loop: nobody moves until the wait times
# out with "database is locked". So a process lets one write transaction at a time reach
# SQLite, and the others wait for it cooperatively, here.
_SQLITE_WRITER = Semaphore(1)
_READS = ("SELECT", "PRAGMA", "WITH", "EXPLAIN")


def _is_sqlite(connection):
    return connection.dialect.name == "sqlite"


@event.listens_for(Engine, "before_cursor_execute")
def _sqlite_one_writer(connection, _cursor, statement, _parameters, _context, _many):
    """Take the process's SQLite write turn before a transaction's first write."""
    if not _is_sqlite(connection) or "sqlite_writer" in connection.info:
        return
    if statement.lstrip()[:7].upper().startswith(_READS):
        return
    _SQLITE_WRITER.acquire()
    connection.info["sqlite_writer"] = True


def _end_turn(connection):
    if connection.info.pop("sqlite_writer", None):
        _SQLITE_WRITER.release()


@event.listens_for(Engine, "commit")
def _sqlite_committed(connection):
    """Give the write turn back once the transaction committed..."""
    if _is_sqlite(connection):
        _end_turn(connection)


@event.listens_for(Engine, "rollback")
def _sqlite_rolled_back(connection):
    """...or rolled back."""
    if _is_sqlite(connection):
        _end_turn(connection)


@event.listens_for(Pool, "checkin")
def _sqlite_checked_in(_dbapi_connection, record):
    """Never keep a turn past the connection's return to the pool (an error path)."""
    if record is not None and record.info.pop("sqlite_writer", None):
        _SQLITE_WRITER.release()

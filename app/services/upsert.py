"""INSERT … ON CONFLICT on whichever database the app runs on (PostgreSQL or SQLite).

One user's writes may race (a double click, two tabs, a retry): an insert that looks for the
row first and adds it when missing breaks the primary key when two requests do so at once.
Letting the database settle the conflict makes such writes safe without a retry loop.
"""
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def insert(model):
    """Return an INSERT into *model*'s table that takes ``on_conflict_do_nothing/update``.

    Its result's ``rowcount`` is the number of rows inserted or updated (0: the row was
    already there, as wanted), which SQLAlchemy reports for an INSERT only when asked to.
    """
    insert_ = _INSERTS[db.session.get_bind().dialect.name](model)
    return insert_.execution_options(preserve_rowcount=True)

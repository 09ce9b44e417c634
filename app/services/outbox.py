"""The outbox: an event is stored with the change it announces, so that a process stopped
between the commit and the publish (killed, crashed, its machine gone) loses nothing.

A write stores its event in its own transaction (:func:`stage`), leased to it for
``OUTBOX_LEASE_SECONDS``; after the commit it publishes it and deletes the row (:func:`send`).
A write whose event is made after its commit (counts read then, a follow's announcements)
stores a row naming the channels concerned, and gives :func:`send` what publishes.
A row whose lease has run out was left by a process that stopped in between (or one far behind,
which then leaves it), and the :class:`Relay` of any gunicorn worker takes it over:

- every channel that may have missed the event *starts over* (:meth:`Broker.restart`): its
  streams get ``resync_required`` and their clients read the change over REST. A fan-out is
  many publishes, and the stopped process may have made some of them: publishing again would
  duplicate those, a restart only costs their clients a refetch. A cold channel stays cold.
- a large author's event, published once on the large-author channel, is published there
  again, at most once (the row's id is the publish's once-id), so their followers get it live.

The in-process broker's history dies with its process, whose clients resync anyway: rows left
by an earlier process are only deleted.
"""
import dataclasses
import json
import logging
from datetime import datetime, timedelta

import gevent
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.broker import BrokerUnavailable
from app.broker.extension import current_broker
from app.events import schema
from app.events.channels import feed_channels
from app.extensions import db
from app.models import OutboxEntry
from app.models.base import new_id, utcnow
from app.services import audience, notify

log = logging.getLogger(__name__)

RELAY_BATCH = 100  # rows taken over per look


@dataclasses.dataclass(frozen=True)
class Staged:
    """An event stored with its change, to :func:`send` after the commit."""

    id: str
    event_type: str
    channels: list
    author_id: str | None
    large: bool
    lease_until: datetime


def stage(event_type, payload, channels=(), author_id=None, large=None):
    """Store the event in the open transaction; return it as :class:`Staged`.

    :param channels: channels named outright (a post's, say).
    :param author_id: also publish to the author's feed and their followers' (or, for a large
        author, once on the large-author channel).
    :param large: whether the author counts as large here (None: as the database says now).
        False makes a row left behind start every follower's feed over, even an author's
        just made large (whose announcement to those feeds the row stands for).
    """
    now = utcnow()
    if large is None:
        large = bool(author_id and audience.is_large(author_id))
    staged = Staged(new_id(), event_type, list(channels), author_id, large,
                    now + timedelta(seconds=_lease_seconds()))
    db.session.add(OutboxEntry(
        id=staged.id, event_type=event_type, payload=json.dumps(payload),
        channels=json.dumps(staged.channels), author_id=author_id, large=staged.large,
        created_at=now, lease_until=staged.lease_until))
    return staged


def send(staged, payload, publish=None):
    """Publish a staged event once its transaction is committed, then forget it.

    *payload* is the event's fields, as given to :func:`stage` (the stored copy is for the
    relay). A publish that fails (the broker or the database away) leaves the row to the relay,
    and the write still succeeds: its change is committed. Return whether it was published.

    *publish*, a callable that returns False when the broker was away, publishes instead of
    the staged channels: a change whose announcement is decided after its commit (a follow's)
    stores a row that makes its channels start over should the process stop before.
    """
    event = schema.Event(staged.event_type, payload)
    _pause_if_asked(event)
    try:
        if not _still_leased(staged):
            log.warning("outbox entry %s: its lease ran out before its publish; the relay has "
                        "it", staged.id)
            return False
        published = _publish(staged, event) if publish is None else publish()
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("outbox entry %s not published (%s); the relay will take it", staged.id, exc)
        return False
    if not published:
        log.warning("outbox entry %s: the broker is away; the relay will take it", staged.id)
        return False
    current_app.extensions["outbox"].forget(staged.id)
    return True


def _still_leased(staged):
    """Return whether the relay cannot have taken the entry over: well inside its lease, or
    leased again now (a request far behind, with a relay about to look)."""
    if utcnow() < staged.lease_until - timedelta(seconds=_lease_seconds() / 2):
        return True
    renewed = db.session.execute(
        update(OutboxEntry).where(OutboxEntry.id == staged.id,
                                  OutboxEntry.lease_until == staged.lease_until)
        .values(lease_until=utcnow() + timedelta(seconds=_lease_seconds()))).rowcount
    db.session.commit()
    return bool(renewed)


def _publish(staged, event):
    """Publish to where the event was staged for; return False when the broker was away."""
    if staged.author_id:
        return audience.publish_to_followers(staged.author_id, event, staged.channels,
                                             large=staged.large, once=staged.id)
    return notify.publish(staged.channels, event)


def _pause_if_asked(event):
    marker = current_app.config["OUTBOX_FAULT_PAUSE_MARKER"]
    if marker and marker in json.dumps(event.payload):
        log.warning("outbox fault injection: event %s waits 60 s before its publish", event.type)
        gevent.sleep(60)


def _lease_seconds():
    return current_app.config["OUTBOX_LEASE_SECONDS"]


def recover(entry):
    """Make sure no client misses the event of *entry* (an outbox row) without being told
    (see the module)."""
    broker = current_broker()
    broker.ping()  # away: the row stays for a later look (BrokerUnavailable)
    event = schema.Event(entry.event_type, json.loads(entry.payload))
    channels = json.loads(entry.channels)
    if entry.author_id:
        followers = () if entry.large else audience.follower_ids(entry.author_id)
        channels = feed_channels(entry.author_id, followers) + channels
        if entry.large and not audience.publish_large(entry.author_id, event, once=entry.id):
            raise BrokerUnavailable("the large-author channel could not be published to")
    for channel in channels:
        broker.restart(channel)
    log.warning("outbox entry %s (%s of %s) was not published within its lease (to %s): its "
                "process stopped, or is far behind; %d channels start over%s", entry.id,
                entry.event_type, entry.created_at, entry.lease_until, len(channels),
                ", published again on the large-author channel" if entry.large else "")


class Relay:
    """Takes over the outbox rows of stopped processes; one per process.

    :param app: the Flask app (the relay runs outside any request).
    """

    def __init__(self, app):
        self.app = app
        self.started_at = utcnow()
        self._greenlet = None
        self._published = []  # ids whose rows are to go in the next batch
        self._forgetting = None

    def forget(self, entry_id):
        """Delete a published entry's row, in a batch with those of the next 0.2 s.

        Not in the request: a second commit per write costs a WAL flush. A row left by a
        process stopped before its batch is only a needless restart of its channels later.
        """
        self._published.append(entry_id)
        if self._forgetting is None:
            self._forgetting = gevent.spawn_later(0.2, self._forget_batch)

    def _forget_batch(self):
        try:
            self.flush()
        finally:
            # Published while this batch was being deleted: the next batch.
            self._forgetting = (gevent.spawn_later(0.2, self._forget_batch)
                                if self._published else None)

    def flush(self):
        """Delete the rows of the entries published since the last batch, now."""
        ids, self._published = self._published, []
        if not ids:
            return
        with self.app.app_context():
            try:
                db.session.execute(delete(OutboxEntry).where(OutboxEntry.id.in_(ids)))
                db.session.commit()
            except SQLAlchemyError as exc:
                db.session.rollback()
                log.warning("%d published outbox entries not deleted (%s): the relay will "
                            "restart their channels, needlessly", len(ids), exc)
            finally:
                db.session.remove()

    def start(self):
        """Look at once (a restart follows a crash), then every ``OUTBOX_RELAY_SECONDS``."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run_forever)

    def close(self):
        """Stop looking, and delete what is published (the worker is exiting)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self._forgetting is not None:
            self._forgetting.join(timeout=5)  # a batch under way ends on this app's engine
        if self._forgetting is not None:  # the next one, not started: done here instead
            self._forgetting.kill(block=False)
            self._forgetting = None
        self.flush()

    def _run_forever(self):
        while True:
            try:
                self.run_once()
            except (BrokerUnavailable, SQLAlchemyError) as exc:
                log.warning("outbox relay: %s; the next look tries again", exc)
            except Exception:  # noqa: BLE001 — the relay must outlive whatever one look meets
                log.exception("outbox relay: this look failed; the next one tries again")
            gevent.sleep(self.app.config["OUTBOX_RELAY_SECONDS"])

    def run_once(self):
        """Take over every row whose lease has run out; return how many."""
        with self.app.app_context():
            try:
                taken = 0
                while True:
                    rows = self._expired()
                    for row in rows:
                        taken += self._take_over(row)
                    if len(rows) < RELAY_BATCH:
                        return taken
            finally:
                db.session.remove()

    def _expired(self):
        # Plain rows, not ORM objects: another relay may delete them at any time.
        table = OutboxEntry.__table__
        rows = db.session.execute(select(table).where(table.c.lease_until < utcnow())
                                  .order_by(table.c.created_at).limit(RELAY_BATCH)).all()
        db.session.commit()
        return rows

    def _take_over(self, row):
        """Lease *row* to this relay, recover it and delete it; return 1, or 0 when another
        process's relay leased it first."""
        claimed = db.session.execute(
            update(OutboxEntry).where(OutboxEntry.id == row.id,
                                      OutboxEntry.lease_until == row.lease_until)
            .values(lease_until=utcnow() + timedelta(seconds=_lease_seconds()))).rowcount
        db.session.commit()
        if not claimed:
            return 0
        if current_broker().durable or row.created_at >= self.started_at:
            recover(row)
        else:
            log.info("outbox entry %s predates this process: its in-process history is gone, "
                     "and its clients resync", row.id)
        db.session.execute(delete(OutboxEntry).where(OutboxEntry.id == row.id))
        db.session.commit()
        return 1


def init_app(app):
    """Give the app its relay (started by each gunicorn worker: see gunicorn.conf.py)."""
    app.extensions["outbox"] = Relay(app)

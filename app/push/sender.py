"""Push notifications to a user's browsers from background greenlets.

A request only queues the push (:func:`push_later`); a few greenlets per process send it,
so no request ever waits on a push service. A push goes only to a user with no open stream:
one with a page open hears the ``notification`` event there instead. A subscription whose
push service answers 404 or 410 is gone for good (RFC 8030 §7.3) and is deleted.
"""
import logging

import gevent
import orjson
import requests
from flask import current_app
from gevent.queue import Empty, Full, Queue
from pywebpush import WebPushException, webpush
from sqlalchemy import delete, select

from app import metrics
from app.extensions import db
from app.models import PushSubscription
from app.stream_quota import QuotaUnavailable, current_quota

log = logging.getLogger(__name__)

#: Pushes waiting in one process at most; more are dropped (and logged), not queued forever.
QUEUE_MAX = 10_000
#: A sender greenlet with nothing to send for this long ends; the next push starts one.
IDLE_SECONDS = 30
SEND_TIMEOUT_SECONDS = 10
GONE = (404, 410)


class Sender:
    """A queue of pushes of one app in one process, and the greenlets that send them."""

    def __init__(self, app):
        self.app = app
        self.size = app.config["PUSH_SENDERS"]
        self.queue = Queue(QUEUE_MAX)
        self.workers = set()
        self.http = requests.Session()  # keeps connections to the push services open

    def submit(self, job):
        """Queue *job* and make sure a greenlet will send it; drop it when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except Full:
            metrics.PUSHES.labels("dropped").inc()
            log.warning("push queue full: a push to user %s is dropped", job[0])
            return
        if len(self.workers) < self.size:
            worker = gevent.spawn(self._work)
            self.workers.add(worker)
            worker.link(self.workers.discard)

    def _work(self):
        while True:
            try:
                job = self.queue.get(timeout=IDLE_SECONDS)
            except Empty:
                return
            try:
                with self.app.app_context():
                    self.send(*job)
            except Exception:  # one failed push must not end the sender
                log.exception("pushing a notification to user %s failed", job[0])

    def send(self, user_id, payload):
        """Push *payload* to every browser of *user_id*, unless they have a stream open."""
        try:
            if current_quota().has_streams(user_id):
                metrics.PUSHES.labels("online").inc()
                return
        except QuotaUnavailable as exc:
            log.warning("cannot tell whether user %s has a page open (%s); pushing", user_id, exc)
        subscriptions = db.session.scalars(
            select(PushSubscription).where(PushSubscription.user_id == user_id)).all()
        targets = [(s.id, s.endpoint, s.p256dh, s.auth) for s in subscriptions]
        db.session.rollback()  # hold no connection while push services answer
        outcomes = {sub_id: self._push(*target, payload) for sub_id, *target in targets}
        for status in outcomes.values():
            outcome = "gone" if status in GONE else "sent" if status in (200, 201, 202) \
                else "failed"
            metrics.PUSHES.labels(outcome).inc()
        gone = [sub_id for sub_id, status in outcomes.items() if status in GONE]
        if gone:
            db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
            db.session.commit()

    def _push(self, endpoint, p256dh, auth, payload):
        """Encrypt and send one push (aes128gcm, VAPID-signed); return the status, or None."""
        keys = self.app.extensions["vapid"]
        try:
            response = webpush(
                {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}, payload,
                vapid_private_key=keys.vapid, vapid_claims={"sub": keys.subject},
                ttl=self.app.config["PUSH_TTL_SECONDS"], timeout=SEND_TIMEOUT_SECONDS,
                requests_session=self.http, headers={"Urgency": "normal"})
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in GONE:
                log.warning("push service refused a push: %s", str(exc).splitlines()[0])
            return status
        except requests.RequestException as exc:
            log.warning("push service unreachable: %s", exc)
            return None
        return response.status_code


def push_later(user_id, message):
    """Queue a push of *message* (a JSON-serialisable object, which static/sw.js shows) to
    *user_id*'s browsers. Does nothing when Web Push is off (no VAPID key).
    """
    app = current_app._get_current_object()
    if app.extensions.get("vapid") is None:
        return
    sender = app.extensions.get("push_sender")
    if sender is None:
        # Made on first use, in the worker process: greenlets do not survive a fork.
        sender = app.extensions["push_sender"] = Sender(app)
    sender.submit((user_id, orjson.dumps(message)))

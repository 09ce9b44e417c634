"""Where a page's live updates start: the channel's newest event id when the page was read."""
import logging

from app.broker import BrokerUnavailable
from app.broker.extension import current_broker
from app.events.channels import LARGE, feed_channel
from app.events.wire import Cursor
from app.services.audience import large_followees

log = logging.getLogger(__name__)


def resume_point(channel):
    """Return the id of *channel*'s newest event, or "" when the broker cannot say.

    Read it *before* the page's rows: the browser client resumes from here, so an event
    published while the page renders is replayed instead of lost (a duplicate is harmless:
    the client updates rows in place).
    """
    try:
        return current_broker().read(channel).head.event_id
    except BrokerUnavailable as exc:
        log.warning("no resume point for %s: %s", channel, exc)
        return ""


def feed_resume_point(viewer_id):
    """Return where the viewer's feed stream starts: with the large-author channel's head too
    when they follow a large author, as the feed stream's own ids are then compound."""
    try:
        broker = current_broker()
        head = broker.read(feed_channel(viewer_id)).head
        large = broker.read(LARGE).head if large_followees(viewer_id) else None
    except BrokerUnavailable as exc:
        log.warning("no resume point for the feed of %s: %s", viewer_id, exc)
        return ""
    return Cursor(head, large).event_id

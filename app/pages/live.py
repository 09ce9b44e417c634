"""Where a page's live updates start: the channel's newest event id when the page was read."""
import logging

from app.broker import BrokerUnavailable
from app.broker.extension import current_broker

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

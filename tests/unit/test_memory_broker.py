"""The in-process broker lets quiet channels go, as Redis expires their keys."""
from app.broker.memory import POSITION_GRACE_SECONDS, MemoryBroker
from app.events.schema import Event
from app.events.wire import Position
from app.transports.delivery import Inbox

WINDOW = 60


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _broker(clock):
    return MemoryBroker(clock=clock, history_max_events=10, history_max_seconds=WINDOW)


def _publish(broker, channel):
    broker.read(channel)  # as a stream's open does: a channel nobody read is cold
    return Position.parse(broker.publish([channel], Event("new_post", {"n": 1}))[0])


def _held(broker):
    """Return the channels the broker holds state for (private, but memory is the point)."""
    return {name: state.history is not None for name, state in broker._channels.items()}


def test_quiet_channels_lose_their_history_then_their_position():
    clock = Clock()
    broker = _broker(clock)
    firsts = [_publish(broker, f"post:{n}") for n in range(1000)]
    lasts = [_publish(broker, f"post:{n}") for n in range(1000)]
    clock.now += WINDOW / 2
    recent = _publish(broker, "post:recent")
    clock.now += WINDOW / 2 + 1

    broker.read("feed:someone")  # any use of the broker sweeps, at most once a minute
    held = _held(broker)
    assert held["post:recent"] and not any(held[f"post:{n}"] for n in range(1000))
    assert broker.read("post:0", firsts[0]).messages is None  # missed an event: resync
    assert broker.read("post:0", lasts[0]).messages == []  # saw the last one: nothing lost
    assert broker.read("post:recent", Position(recent.epoch, 0)).messages is not None

    clock.now += POSITION_GRACE_SECONDS + WINDOW + 1  # after the reads above too
    broker.read("feed:someone")
    assert set(_held(broker)) == {"feed:someone"}
    replay = broker.read("post:0", lasts[0])
    assert replay.messages is None and replay.head.epoch != lasts[0].epoch


def test_a_channel_with_a_stream_keeps_its_position_however_quiet():
    clock = Clock()
    broker = _broker(clock)
    first = _publish(broker, "feed:a")
    inbox = Inbox("feed:a")
    broker.subscribe(inbox)
    try:
        clock.now += WINDOW + POSITION_GRACE_SECONDS * 2
        broker.read("feed:other")
        assert broker.read("feed:a").head == first
        assert _publish(broker, "feed:a") == Position(first.epoch, first.seq + 1)
    finally:
        broker.unsubscribe(inbox)
    clock.now += WINDOW + POSITION_GRACE_SECONDS + 1
    broker.read("feed:other")
    assert "feed:a" not in _held(broker)


def test_publishing_does_not_keep_a_channel_warm_reading_does():
    clock = Clock()
    broker = _broker(clock)
    first = _publish(broker, "feed:read")
    broker.read("feed:published")
    clock.now += POSITION_GRACE_SECONDS
    event = Event("new_post", {"n": 2})
    assert broker.publish(["feed:published"], event) != [None]
    broker.read("feed:read")
    clock.now += WINDOW + 1
    # Read a week and a window ago, published to since: cold. Read since: warm.
    assert broker.publish(["feed:published", "feed:read"], event) == [
        None, Position(first.epoch, first.seq + 1).event_id]
    assert "feed:published" not in _held(broker)


def test_an_authors_window_holds_events_for_the_history_window_only():
    clock = Clock()
    broker = _broker(clock)
    broker.read("large")
    start = Position.parse(broker.publish(["large"], Event("new_post", {"n": 0}, author="a"))[0])
    broker.publish(["large"], Event("new_post", {"n": 1}, author="a"))
    assert len(broker.read_authors("large", {"a": start}).messages) == 1
    clock.now += WINDOW + 1
    broker.publish(["large"], Event("new_post", {"n": 2}, author="b"))  # keeps the channel
    assert broker.read_authors("large", {"a": start}).messages is None  # 1 is past the window
    last = Position.parse(broker.read("large").head.event_id)
    assert broker.read_authors("large", {"a": Position(start.epoch, start.seq + 1)}).messages == []
    assert broker.read_authors("large", {"a": last}).messages == []

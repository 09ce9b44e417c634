"""What a stream received, checked event by event: gaps, reorders, duplicates and latency.

Event ids are ``<epoch>-<seq>``, and seq grows by exactly one per channel within an epoch; the
latency of an event is its receive time minus its ``ts``. On the feed of a reader who follows
a large author they are compound, ``<feed id>.<large-author channel id>``: the feed part is
checked as a plain id is, on the events that came by the feed (the others repeat it); the
large-author part only ever grows within its epoch (it skips other readers' authors' events).
"""


def parse_id(event_id):
    """Return ``(epoch, seq)`` of a plain event id."""
    epoch, _, seq = event_id.rpartition("-")
    return epoch, int(seq)


def split_id(event_id):
    """Return the ``(epoch, seq)`` of an id's own part and of its large-author part (or None)."""
    own, _, large = event_id.partition(".")
    return parse_id(own), (parse_id(large) if large else None)


class StreamStats:
    """What one logical stream received, checked event by event.

    A *segment* is a run of one epoch that must have no hole: it starts at the first event of a
    fresh connection or the first after ``resync_required``. Within a segment, an id above the
    next expected one opens holes (a gap); an id below the highest seen fills a hole (a reorder)
    or repeats one (a duplicate). A change of epoch without ``resync_required`` before it is a
    silent gap: the worst kind.
    """

    def __init__(self):
        self.epoch = None
        self.top = None  # highest seq of the segment
        self.large = None  # (epoch, seq): the highest large-author part of the segment
        self.holes = set()
        self.seen = set()  # ids
        self.resync_pending = False
        self.received = 0  # events with an id, duplicates included
        self.duplicates = 0
        self.reorders = 0
        self.silent_epoch_changes = 0
        self.resyncs = 0
        self.latencies = []  # ms, live events only
        self.timeline = None  # [(received at, latency ms)] when set to a list
        self.ids = []  # unique ids in arrival order
        self.types = {}
        self.payloads = []  # (id, object) when keep_payloads

    @property
    def gaps(self):
        """Return the number of events missing inside segments, plus silent epoch changes."""
        return len(self.holes) + self.silent_epoch_changes

    def fresh(self):
        """A connection without a resume point starts: whatever comes first begins a segment."""
        self.epoch = None
        self.large = None

    def begin_at(self, event_id):
        """Start accounting at the position *event_id*: the next event must follow it."""
        (self.epoch, self.top), self.large = split_id(event_id)
        self.holes = set()

    def on_message(self, obj, received_at, live=True):
        """Account for one JSON object received on the stream."""
        kind = obj.get("type")
        self.types[kind] = self.types.get(kind, 0) + 1
        if kind == "resync_required":
            self.resyncs += 1
            self.resync_pending = True
            return
        event_id = obj.get("id")
        if not event_id:
            return
        self.received += 1
        if live and "ts" in obj:
            latency = received_at * 1000 - obj["ts"]
            self.latencies.append(latency)
            if self.timeline is not None:
                self.timeline.append((received_at, latency))
        (epoch, seq), large = split_id(event_id)
        if event_id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(event_id)
        self.ids.append(event_id)
        if large is not None and self._by_large_author(epoch, seq, large):
            return
        if self.epoch is None or self.resync_pending or epoch != self.epoch:
            if self.epoch is not None and epoch != self.epoch and not self.resync_pending:
                self.silent_epoch_changes += 1
            self.epoch, self.top, self.resync_pending = epoch, seq, False
            self.holes = set()
            return
        if seq == self.top + 1:
            self.top = seq
        elif seq > self.top + 1:
            self.holes.update(range(self.top + 1, seq))
            self.top = seq
        else:
            self.reorders += 1
            self.holes.discard(seq)

    def _by_large_author(self, epoch, seq, large):
        """Check an id's large-author part; return True when the event came by that channel
        (its feed part is the stream's place, already seen)."""
        last = self.large
        if last is None or self.resync_pending or self.epoch is None:
            self.large = large
        elif large[0] != last[0]:
            self.silent_epoch_changes += 1
            self.large = large
        elif large[1] < last[1]:
            self.reorders += 1
        else:
            self.large = large
        return (epoch, seq) == (self.epoch, self.top) and not self.resync_pending


def percentile(values, fraction):
    """Return the *fraction* percentile of *values* (nearest rank), or 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def summarize(clients):
    """Return the totals of many clients' :class:`StreamStats` as a dict."""
    stats = [c.stats for c in clients]
    latencies = [v for s in stats for v in s.latencies]
    return {
        "clients": len(stats),
        "events": sum(len(s.ids) for s in stats),
        "gaps": sum(s.gaps for s in stats),
        "reorders": sum(s.reorders for s in stats),
        "duplicates": sum(s.duplicates for s in stats),
        "silent_epoch_changes": sum(s.silent_epoch_changes for s in stats),
        "resyncs": sum(s.resyncs for s in stats),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else 0.0,
    }

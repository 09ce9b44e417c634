"""Turn what the streams recorded into deliveries, latencies, losses and gaps (after the run)."""
import bisect
import re

import orjson

from bench.client import MARK

_SSE_DATA = re.compile(rb"\ndata: ?([^\n]*)\n")


def _time_at(ends, offsets, position):
    """Return the receive time of the chunk holding byte *position*."""
    return ends[bisect.bisect_left(offsets, position)][1]


def http_status(raw):
    """Return the status code of the answer at the start of *raw* (0 when there is none)."""
    try:
        return int(raw[:raw.index(b"\r\n")].split(b" ", 2)[1])
    except (ValueError, IndexError):
        return 0


def error_code(raw):
    """Return the ``error.code`` of a JSON error answer, or ''."""
    start = raw.find(b'"code":"')
    return raw[start + 8:raw.index(b'"', start + 8)].decode() if start >= 0 else ""


def sse_objects(raw, ends):
    """Return ``(receive time, event object)`` for every event with a ``ts`` in an SSE stream.

    Every yield of the servers is whole SSE blocks, so HTTP chunk headers never split a line.
    """
    offsets = [end for end, _ in ends]
    out = []
    for match in _SSE_DATA.finditer(raw):
        data = match.group(1)
        if MARK in data:
            out.append((_time_at(ends, offsets, match.end() - 1), orjson.loads(data)))
    return out


def ws_objects(raw, ends):
    """Return ``(receive time, event object)`` for every text frame with a ``ts``."""
    offsets = [end for end, _ in ends]
    out = []
    pos = raw.find(b"\r\n\r\n")
    if pos < 0:
        return out
    pos += 4
    size = len(raw)
    while pos + 2 <= size:
        opcode, length = raw[pos] & 0x0F, raw[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(raw[pos:pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(raw[pos:pos + 8], "big")
            pos += 8
        end = pos + length
        if end > size:
            break
        payload = raw[pos:end]
        if opcode == 1 and MARK in payload:
            out.append((_time_at(ends, offsets, end - 1), orjson.loads(payload)))
        pos = end
    return out


def poll_objects(answers):
    """Return ``(receive time, event object)`` for every event of a long-poll chain."""
    out = []
    for at, body in answers:
        out.extend((at, event) for event in orjson.loads(body)["events"] if "ts" in event)
    return out


def marker(event):
    """Return the benchmark's mark in an event's content: ``(tag, number)`` or None."""
    item = event.get("comment") or event.get("post") or {}
    tag, _, number = str(item.get("content", "")).partition(" ")
    return (tag, int(number)) if number.isdigit() else None


def _seq(event_id):
    epoch, _, seq = str(event_id).rpartition("-")
    return epoch, int(seq) if seq.isdigit() else -1


def percentile(values, p):
    """Return the *p*-th percentile of sorted *values* (nearest rank)."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values))) - 1))]


def summarise(streams, tag, expected):
    """Count what every stream got of the events marked *tag*.

    :param streams: one list of ``(receive time, event)`` per stream.
    :param expected: for each stream, the set of numbers published to its channel under *tag*.
    :returns: deliveries, losses, duplicates, gaps (id jumps), latency percentiles (ms) and the
        first and last receive times.
    """
    latencies, lost, duplicates, gaps, reordered, deliveries = [], 0, 0, 0, 0, 0
    first = last = None
    for events, wanted in zip(streams, expected):
        seen, ids, previous = set(), {}, None
        for at, event in events:
            mark = marker(event)
            if mark is None or mark[0] != tag:
                continue
            deliveries += 1
            latencies.append(at * 1000 - event["ts"])
            first = at if first is None or at < first else first
            last = at if last is None or at > last else last
            if mark[1] in seen:
                duplicates += 1
            seen.add(mark[1])
            epoch, seq = _seq(event.get("id"))
            ids.setdefault(epoch, set()).add(seq)
            if previous is not None and previous[0] == epoch and seq < previous[1]:
                reordered += 1
            previous = (epoch, seq)
        # A gap: an id missing between the first and the last one the stream got.
        gaps += sum(max(s) - min(s) + 1 - len(s) for s in ids.values())
        lost += len(wanted - seen)
    latencies.sort()
    return {
        "deliveries": deliveries, "expected": sum(len(w) for w in expected), "lost": lost,
        "duplicates": duplicates, "gaps": gaps, "out_of_order": reordered,
        "first_at": first, "last_at": last,
        "latency_ms": {name: (round(percentile(latencies, p), 2) if latencies else None)
                       for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))},
    }

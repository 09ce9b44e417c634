"""feedclient without a server: the SSE parser, the backoff, errors, token rotation, imports."""
import subprocess
import sys

import pytest

from feedclient import ApiError, Backoff, FeedClient, SSEParser, parse_sse
from feedclient.sse import ServerSentEvent
from tests.support.servers import ROOT


def test_parses_the_servers_frames():
    raw = (b'retry: 2345\n\nid: 7-1\nevent: new_post\ndata: {"type":"new_post","id":"7-1"}\n\n'
           b'event: ping\ndata: {"type":"ping"}\n\n')
    parser = SSEParser()
    events = parser.feed(raw)
    assert events == [ServerSentEvent("new_post", '{"type":"new_post","id":"7-1"}', "7-1"),
                      ServerSentEvent("ping", '{"type":"ping"}', "7-1")]
    assert events[0].json() == {"type": "new_post", "id": "7-1"}
    assert parser.retry == 2345 and parser.last_event_id == "7-1"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_split_anywhere(newline):
    raw = (b": comment" + newline + b"id: 1" + newline + b"event: a" + newline + b"data: x"
           + newline + b"data:y" + newline + newline + b"data: \xc3\xa9" + newline + newline)
    expected = [ServerSentEvent("a", "x\ny", "1"), ServerSentEvent("message", "é", "1")]
    assert parse_sse(raw) == expected
    for cut in range(len(raw) + 1):  # two reads, split at every byte (a CRLF, a UTF-8 char)
        parser = SSEParser()
        assert parser.feed(raw[:cut]) + parser.feed(raw[cut:]) == expected, cut
    parser = SSEParser()
    assert [e for byte in raw for e in parser.feed(bytes([byte]))] == expected


def test_blocks_without_data_are_not_dispatched_and_bad_fields_are_ignored():
    assert parse_sse("event: x\n\nid: a\0b\nretry: soon\nfoo: bar\ndata\n\n") == [
        ServerSentEvent("message", "", None)]
    assert parse_sse("data: unterminated") == []


def test_backoff_is_capped_exponential_with_full_jitter():
    backoff = Backoff(base=0.5, cap=15)
    assert [backoff.delay(n, rng=lambda: 1.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert backoff.delay(10_000, rng=lambda: 1.0) == 15
    assert backoff.delay(3, rng=lambda: 0.0) == 0
    delays = [backoff.delay(4) for _ in range(200)]
    assert all(0 <= d <= 8 for d in delays) and len(set(delays)) > 100


def test_api_error_reads_the_envelope_and_retry_after():
    error = ApiError.from_answer(
        429, b'{"error": {"code": "rate_limited", "message": "slow down"}}', {"Retry-After": "3"})
    assert (error.status, error.code, error.message, error.retry_after) == (
        429, "rate_limited", "slow down", 3.0)
    garbled = ApiError.from_answer(502, b"<html>Bad Gateway</html>", {})
    assert (garbled.code, garbled.retry_after) == ("http_error", None)
    assert "Bad Gateway" in garbled.message


def test_a_refresher_callback_is_used_once_per_stale_token():
    calls = []
    client = FeedClient("http://127.0.0.1:9", access_token="old",
                        refresher=lambda: calls.append(1) or f"new{len(calls)}")
    assert client.refresh(stale_token="old") == "new1"
    # A second stream that saw the old token expire must not refresh again.
    assert client.refresh(stale_token="old") == "new1"
    assert calls == [1]


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="sse, ws, poll"):
        FeedClient("http://127.0.0.1:9").follow_feed(transport="carrier-pigeon")


def test_the_package_imports_nothing_of_the_server():
    code = ("import sys, feedclient; "
            "print([m for m in sys.modules if m.split('.')[0] in ('flask', 'app', 'werkzeug')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

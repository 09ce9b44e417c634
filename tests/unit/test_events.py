"""The event model: encoding once per event, channels, fan-out, and the wire format."""
import ast
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.events.channels import (channel_kind, feed_channel, feed_channels, post_channel,
                                 post_event_channels)
from app.events.schema import NEW_POST, POST_REACTION, TYPING, Event, control
from app.events.wire import Cursor, Message, Position, pack, unpack


def test_one_encoding_serves_every_channel_id():
    event = Event(POST_REACTION, {"post_id": "p", "reaction_data": {"total": 1}}, ts=123)
    head, tail = event.encode()
    for event_id in ("abc-1", "abc-999"):
        decoded = orjson.loads(head + event_id.encode() + tail)
        assert decoded == {"type": POST_REACTION, "id": event_id, "ts": 123, "post_id": "p",
                           "reaction_data": {"total": 1}}


def test_ephemeral_events_have_no_id():
    head, tail = Event(TYPING, {"post_id": "p"}, ts=5).encode()
    assert tail == b"" and orjson.loads(head) == {"type": TYPING, "ts": 5, "post_id": "p"}


def test_payload_text_that_looks_like_the_id_mark_is_left_alone():
    event = Event(NEW_POST, {"post": {"content": '"id":"x" \x00id\x00'}}, ts=1)
    head, tail = event.encode()
    assert orjson.loads(head + b"e-1" + tail)["post"]["content"] == '"id":"x" \x00id\x00'


def test_control_messages():
    assert orjson.loads(control("ping", timestamp=3)) == {"type": "ping", "timestamp": 3}


def test_channels_and_fan_out():
    assert feed_channel("u") == "feed:u" and post_channel("p") == "post:p"
    assert channel_kind("feed:u") == "feed" and channel_kind("post:p") == "post"
    assert feed_channels("a", ["b", "c", "a"]) == ["feed:a", "feed:b", "feed:c"]
    assert post_event_channels(NEW_POST, "p") == []
    assert post_event_channels(POST_REACTION, "p") == ["post:p"]


@pytest.mark.parametrize("event_id,expected", [
    ("abc123-7", Position("abc123", 7)), ("a-0", Position("a", 0)),
    ("", None), ("abc", None), ("-1", None), ("abc-x", None), ("a b-1", None), ("é-1", None),
    ("a-" + "9" * 70, None), (None, None),
])
def test_positions_parse_from_event_ids(event_id, expected):
    assert Position.parse(event_id) == expected


# Parts of ids a client may send: Unicode digits ("²" is a digit to str.isdigit, and int()
# refuses it), full-width and Arabic-Indic digits (int() takes them), signs, exponents, huge
# numbers, NUL and empty parts.
_PARTS = st.one_of(
    st.text(), st.sampled_from(["", "-", "²", "٣", "９", "1e9", "+1", "\x00", " ", "_", "0x1f"]),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1))


@given(st.lists(_PARTS, max_size=5).map("-".join))
@example("ab-²")
@example("1-٣")
@example("９-9")
@example("-1-1")
@example("1-1e9")
@example("a-" + "9" * 10_000)
@example("a-1\x00")
@example("a--1")
@example("a-1-")
def test_any_text_parses_to_a_position_of_ours_or_none(text):
    position = Position.parse(text)
    if position is not None:
        assert position.epoch.isascii() and position.epoch.isalnum()
        assert 0 <= position.seq < 10**18
        assert Position.parse(position.event_id) == position
        epoch, _, seq = text.strip().rpartition("-")
        assert epoch == position.epoch and seq.isascii() and int(seq) == position.seq


def test_wire_round_trip_keeps_bytes_and_header():
    raw = pack("new_post", "e-3", 42, b'{"type":"new_post","id":"e-3"}')
    message = unpack(raw)
    assert (message.type, message.event_id, message.epoch, message.seq, message.ts) == \
        ("new_post", "e-3", "e", 3, 42)
    assert message.data == b'{"type":"new_post","id":"e-3"}'
    typing = unpack(pack("typing", None, 1, b"{}"))
    assert typing.event_id is None and typing.seq is None


@given(st.lists(_PARTS, max_size=5).map("-".join), st.lists(_PARTS, max_size=5).map("-".join))
@example("a-1", "b-2")
@example("a-1", "")
@example("a-1", "b-²")
@example("a-1.b", "2")
def test_any_text_parses_to_a_cursor_of_ours_or_none(own, large):
    text = f"{own}.{large}"
    cursor = Cursor.parse(text)
    if cursor is not None:
        assert Cursor.parse(cursor.event_id) == cursor
        assert cursor.own == Position.parse(own) and cursor.large == Position.parse(large)
    if "." not in own:  # a plain id is a cursor without a large-author part
        assert Cursor.parse(own) == (Cursor(Position.parse(own)) if Position.parse(own) else None)


def test_a_large_authors_event_carries_its_author_in_the_header_and_a_stamped_id():
    event = Event("new_post", {"post": {"id": "p1"}}, author="a1")
    head, tail = event.encode()
    raw = pack(event.wire_type, "e-3", 42, head + b"e-3" + tail)
    message = unpack(raw)
    assert (message.type, message.author, message.event_id) == ("new_post", "a1", "e-3")
    stamped = message.stamped("f-9.e-3")
    assert stamped.event_id == "f-9.e-3" and stamped.author == "a1"
    assert orjson.loads(stamped.data) == {"type": "new_post", "id": "f-9.e-3", "ts": event.ts,
                                          "post": {"id": "p1"}}
    assert unpack(pack("new_post", "e-3", 1, b"{}")).author is None


def test_a_message_frames_once_per_framer():
    calls = []

    def framer(message):
        calls.append(message)
        return b"framed"

    message = Message("new_post", b"{}", "e-1", 1)
    assert message.framed(framer) == message.framed(framer) == b"framed"
    assert len(calls) == 1


def test_the_event_packages_never_import_flask():
    for package in ("events", "broker"):
        for path in (Path(__file__).parents[2] / "app" / package).glob("*.py"):
            if path.name == "extension.py":
                continue  # the one module that attaches the broker to the app
            tree = ast.parse(path.read_text())
            names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert not any(n and n.split(".")[0] == "flask" for n in names), path

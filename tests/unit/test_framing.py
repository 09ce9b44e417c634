"""Transport framing: SSE blocks and WebSocket frames of one message."""
import struct

from app.events.wire import Message
from app.transports.sse import sse_frame
from app.transports.ws_frames import text_frame


def test_sse_frame_with_and_without_id():
    assert sse_frame(Message("new_post", b'{"a":1}', "e-1", 1)) == \
        b'id: e-1\nevent: new_post\ndata: {"a":1}\n\n'
    assert sse_frame(Message("ping", b'{"type":"ping"}')) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_websocket_text_frame_lengths():
    for size, header_len in ((10, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        frame = text_frame(Message("x", b"a" * size))
        assert frame[0] == 0x81 and len(frame) == size + header_len
        if header_len == 4:
            assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
        if header_len == 10:
            assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size

"""SSE streams that wait without a greenlet: parked on the event loop between writes.

A waiting stream used to hold a greenlet (its saved C stack, gevent's bookkeeping) and through
it gunicorn's per-request objects (the WSGI environ, the parsed request, its parser and
buffers) for as long as it stayed open: about 10 KB of the 23 KB an idle stream cost. Once its
headers and first batch are out, a stream's live messages are written by the event loop anyway
(:class:`~app.transports.delivery.Flusher`), so all the greenlet did was wait — for a ping to
be due, a gap to repair, the token to expire, the client to go. A parked stream waits as
callbacks instead: a timer for its next ping or expiry, its inbox's wake-up, the read watcher
of :func:`~app.transports.opening.watch_hangup`. A greenlet is spawned only while it has work
(:meth:`StreamSession.next_batch <app.transports.session.StreamSession.next_batch>`, the same
step the greenlet loop takes), then the stream parks again.

Taking a stream from gunicorn: after the first batch its response ends, for gunicorn, without
the last chunk (gunicorn is told the body is not chunked: it has sent all it will send, and
closes the connection after it); gunicorn writes its access-log line then, and its handler
returns. The socket it closes stays open through a file object the stream holds — "the socket
is closed when every file object made from it is closed too" (``socket.makefile``) — and
closes for real when the stream ends, after the stream's own last chunk.
"""
import logging
import time

import gevent
from gevent import get_hub

from app import metrics
from app.transports.delivery import SHUTDOWN
from app.transports.session import StreamEnded

log = logging.getLogger(__name__)

LAST_CHUNK = b"0\r\n\r\n"


class ParkedStreams:
    """The process's parked streams: how many there may be, and ending them as it stops.

    :param limit: at most this many parked at once (gunicorn's ``worker_connections``, set
        by ``post_worker_init``); beyond it a stream keeps its greenlet, and a pool slot with it,
        so a worker holds at most twice its ``worker_connections`` of streams.
    """

    def __init__(self, limit=None):
        self.limit = limit
        self._streams = set()

    def __len__(self):
        return len(self._streams)

    def park(self, session, writer, server_response, hangup):
        """Park *session*'s stream if it can be; return whether it was.

        It can be when the server is gunicorn (*server_response* is its response, headers
        sent), the stream writes its own frames (*writer*), and the limit is not reached.
        The caller's response must then end without closing the session: it is this
        module's, with *writer* and the *hangup* watcher.
        """
        if writer is None or not getattr(server_response, "headers_sent", False) \
                or not hasattr(server_response, "chunked") \
                or (self.limit is not None and len(self._streams) >= self.limit):
            return False
        chunked = server_response.chunked
        server_response.chunked = False  # gunicorn writes no last chunk: the stream will
        stream = ParkedStream(self, session, writer, hangup, chunked)
        self._streams.add(stream)
        metrics.STREAMS_PARKED.inc()
        stream.park()
        return True

    def discard(self, stream):
        """Forget an ended *stream*."""
        if stream in self._streams:
            self._streams.discard(stream)
            metrics.STREAMS_PARKED.dec()

    def drain(self, timeout):
        """End every parked stream as on shutdown (a ``ping``, then its last chunk), waiting up
        to *timeout* seconds for them; close those still writing then."""
        for stream in list(self._streams):
            stream.session.inbox.close(SHUTDOWN)
        deadline = time.monotonic() + timeout
        while self._streams and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for stream in list(self._streams):
            stream.close()


class ParkedStream:
    """One SSE stream between writes, with no greenlet: what wakes it, and what runs then."""

    # Thousands of them wait in a worker: no per-instance __dict__.
    __slots__ = ("streams", "session", "writer", "hangup", "chunked", "timer", "running",
                 "_file")

    def __init__(self, streams, session, writer, hangup, chunked):
        self.streams = streams
        self.session = session
        self.writer = writer
        self.hangup = hangup
        self.chunked = chunked
        self.timer = None
        self.running = False
        # Holds the socket open after gunicorn's close (see the module's docstring).
        self._file = writer.sock.makefile("wb", buffering=0)
        session.attach(writer)

    def park(self):
        """Wait for the next thing to do, as callbacks of the event loop."""
        session = self.session
        session.inbox.park(self)
        timer = self.timer = get_hub().loop.timer(session.due_in())
        timer.start(self.switch, None)

    def switch(self, _value=None):
        """Wake the stream (its inbox or its timer calls this): run it in a greenlet of its own,
        unless it runs already."""
        if not self.running:
            self.running = True
            gevent.spawn_raw(self._run)

    def _run(self):
        session, writer = self.session, self.writer
        inbox = session.inbox
        inbox.unpark()
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        try:
            while True:
                batch = session.next_batch(wait=False)
                if batch or writer.pending:
                    writer.send(b"".join(message.framed(writer.framer) for message in batch))
                    session.delivered(batch)
                batch = None
                if not inbox.has_work():
                    break
        except StreamEnded as ended:
            self._end(ended.last)
            return
        except OSError:
            self.close()  # the client went away
            return
        except Exception:  # noqa: BLE001 - one stream's bug ends that stream, as in a request
            log.exception("stream %s failed", session.stream_id)
            self.close()
            return
        self.running = False
        self.park()

    def _end(self, last):
        """Write *last* (or nothing) and the response's end, then close."""
        writer = self.writer
        data = last.framed(writer.framer) if last is not None else b""
        try:
            writer.send(data + LAST_CHUNK if self.chunked else data)
        except OSError:
            pass
        finally:
            self.close()

    def close(self):
        """Close the session and the socket; safe to call twice."""
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        if self.hangup is not None:
            self.hangup.stop()  # before the socket closes: its descriptor may be reused
            self.hangup = None
        self.session.inbox.unpark()
        self.streams.discard(self)
        try:
            self.session.close()
        finally:
            self._file.close()
            self.writer.sock.close()

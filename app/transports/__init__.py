"""The three transports (SSE, long-poll, WebSocket) over one stream session.

A transport authenticates, frames and moves bytes; what to send, in which order, with which
replay, is :mod:`app.transports.session`'s job alone.
"""

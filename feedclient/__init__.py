"""A small Python client of the feed server: REST helpers and live channels.

    from feedclient import FeedClient

    client = FeedClient("https://feed.example")
    client.login("ada", "correct horse")
    for event in client.follow_feed(transport="ws"):
        print(event["type"], event.get("id"))

It needs ``requests`` and ``websocket-client``, nothing of the server (no Flask).
"""
from feedclient.client import FeedClient
from feedclient.errors import ApiError
from feedclient.sse import ServerSentEvent, SSEParser, parse_sse
from feedclient.stream import TRANSPORTS, Backoff, Subscription

__all__ = ["TRANSPORTS", "ApiError", "Backoff", "FeedClient", "SSEParser", "ServerSentEvent",
           "Subscription", "parse_sse"]

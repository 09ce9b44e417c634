"""End-to-end smoke check of a running server: ``python -m app.smoke --url http://127.0.0.1:8000``.

Drives the server with the Python client (``feedclient/``) as two users, an author and a follower.
Over each transport (SSE, WebSocket, long-poll) it checks that every event type of the contract
arrives on the right channel — the follower's feed: new_post, post_updated, post_reaction,
comment_count, notification, post_deleted; the post's channel: post_updated, post_reaction, new_comment,
comment_like, typing, comment_deleted, post_deleted — and nothing on the wrong one, and that a
feed reopened with its last event id gets the post it missed, once. It prints each step as it
goes and exits 1 naming the step that failed and why. Works over ``https://`` and behind nginx.
"""
import argparse
import secrets
import sys
import threading
import time

import requests

from feedclient import TRANSPORTS, ApiError, FeedClient

FEED_ONLY = {"new_post", "comment_count", "notification"}
POST_ONLY = {"new_comment", "comment_deleted", "comment_like", "typing"}


class SmokeFailure(Exception):
    """A step of the smoke check failed; the message says which and why."""


class Watcher:
    """A subscription read by a thread of its own; :meth:`expect` waits for an event."""

    def __init__(self, subscription, name):
        self.subscription, self.name = subscription, name
        self.events = []  # (arrival time, event)
        self.error = None
        self.done = False
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for event in self.subscription:
                with self.arrived:
                    self.events.append((time.time(), event))
                    self.arrived.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported by expect(), in the main thread
            self.error = exc
        with self.arrived:
            self.done = True
            self.arrived.notify_all()

    def types(self):
        """Return the types received so far."""
        return [event["type"] for _, event in self.events]

    def expect(self, predicate, what, timeout):
        """Return ``(arrival, event)`` of the first event matching *predicate*.

        :raises SmokeFailure: none within *timeout* seconds, or the stream failed.
        """
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for item in self.events:
                    if predicate(item[1]):
                        return item
                if self.error is not None:
                    raise SmokeFailure(f"the {self.name} stream failed: {self.error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.done:
                    raise SmokeFailure(f"no {what} on the {self.name} within {timeout:g} s; "
                                       f"it received {self.types() or 'nothing'}")
                self.arrived.wait(remaining)

    def close(self):
        """Stop the subscription."""
        self.subscription.close()


class Smoke:
    """The check against one server; :meth:`run` runs every step."""

    def __init__(self, url, timeout=5.0, transports=TRANSPORTS, verify=True, out=sys.stdout):
        self.url, self.timeout, self.transports, self.verify = url, timeout, transports, verify
        self.out = out
        self.watchers = []
        self.notifications = False

    def say(self, text, end="\n"):
        """Print a line of progress."""
        print(text, end=end, file=self.out, flush=True)

    def step(self, label, action):
        """Run one step: print *label*, then ``ok`` and what *action* returned, or raise."""
        self.say(f"  {label} ... ", end="")
        try:
            result = action()
        except SmokeFailure as failure:
            self.say("FAILED")
            raise SmokeFailure(f"{label}: {failure}") from None
        except ApiError as error:
            self.say("FAILED")
            raise SmokeFailure(f"{label}: the server answered {error}") from None
        except (requests.RequestException, OSError) as exc:
            self.say("FAILED")
            raise SmokeFailure(f"{label}: cannot reach {self.url}: {exc} "
                               "(is the server running?)") from None
        self.say("ok" + (f" ({result})" if isinstance(result, str) else ""))
        return result

    def user(self, stem):
        """Register a fresh user; return its client."""
        client = FeedClient(self.url, verify=self.verify)
        client.register(f"{stem}_{secrets.token_hex(4)}", secrets.token_urlsafe(12))
        return client

    def watch(self, subscription, name):
        """Start reading *subscription*; wait for its connection_established."""
        watcher = Watcher(subscription, name)
        self.watchers.append(watcher)
        watcher.expect(lambda e: e["type"] == "connection_established",
                       "connection_established", self.timeout)
        return watcher

    def arrives(self, action, *expected, timeout=None):
        """Do *action*, then wait for each ``(watcher, event type, match)`` of *expected*."""
        timeout = timeout or self.timeout
        sent = time.time()
        action()
        latencies = []
        for watcher, event_type, match in expected:
            arrived, event = watcher.expect(lambda e: e["type"] == event_type and match(e),
                                            event_type, timeout)
            if event_type != "typing" and not (event.get("id") and event.get("ts")):
                raise SmokeFailure(f"{event_type} on the {watcher.name} has no id or ts: {event}")
            latencies.append(f"{watcher.name} {1000 * (arrived - sent):.0f} ms")
        return ", ".join(latencies)

    def run(self):
        """Run every step; return the closing line, or raise :class:`SmokeFailure`."""
        self.say(f"Smoke check of {self.url}")
        health = self.step("GET /healthz", lambda: self.health())
        author = self.step("register the author", lambda: self.user("smoke_author"))
        reader = self.step("register the follower", lambda: self.user("smoke_reader"))
        self.step("the follower follows the author",
                  lambda: reader.follow(author.user["username"]))
        self.notifications = self.step("GET /api/notifications",
                                       lambda: self.has_notifications(reader)) is True
        try:
            for transport in self.transports:
                self.say(f"{transport}:")
                self.transport(transport, author, reader)
        finally:
            for watcher in self.watchers:
                watcher.close()
        return (f"OK: every event type on the feed and post channels over "
                f"{', '.join(self.transports)}, and resume by last event id; "
                f"broker {health['broker']}, database {health['database']}")

    @staticmethod
    def has_notifications(client):
        """Return whether the server has notifications (an older one answers 404)."""
        try:
            client.request("GET", "/api/notifications", params={"limit": 1})
        except ApiError as error:
            if error.status != 404:
                raise
            return "absent: this server has no notifications, their events are not checked"
        return True

    def health(self):
        """Return ``/healthz``; a server that answers 503 names what failed."""
        return FeedClient(self.url, verify=self.verify).health()

    def transport(self, transport, author, reader):
        """Check both channels over one transport."""
        step, arrives = self.step, self.arrives
        feed = step("open the follower's feed",
                    lambda: self.watch(reader.follow_feed(transport), f"{transport} feed"))
        post = {}
        step("a post: new_post on the feed", lambda: arrives(
            lambda: post.update(author.create_post(f"smoke over {transport}")),
            (feed, "new_post", lambda e: e["post"]["id"] == post["id"])))
        pid = post["id"]
        on_post = step("open the post's channel",
                       lambda: self.watch(reader.follow_post(pid, transport), f"{transport} post"))
        step("an edit: post_updated on both", lambda: arrives(
            lambda: author.edit_post(pid, "edited"),
            *[(w, "post_updated", lambda e: e["post"]["content"] == "edited")
              for w in (feed, on_post)]))
        step("a reaction: post_reaction on both", lambda: arrives(
            lambda: reader.react(pid, "love"),
            *[(w, "post_reaction", lambda e: e["reaction_data"]["counts"]["love"] == 1)
              for w in (feed, on_post)]))
        comment = {}
        step("a comment: new_comment on the post, comment_count on the feed", lambda: arrives(
            lambda: comment.update(reader.comment(pid, "a smoke comment")),
            (on_post, "new_comment", lambda e: e["comment"]["id"] == comment["id"]),
            (feed, "comment_count", lambda e: e["post_id"] == pid and e["comment_count"] == 1)))
        liked = [(on_post, "comment_like", lambda e: e["comment_id"] == comment["id"])]
        if self.notifications:
            liked.append((feed, "notification",
                          lambda e: e["notification"]["type"] == "comment_like"))
        step("a comment like: comment_like on the post"
             + (", notification on the feed" if self.notifications else ""),
             lambda: arrives(lambda: author.like_comment(comment["id"]), *liked))
        step("typing: typing on the post", lambda: self.typing(on_post, author, pid))
        step("a comment deleted: comment_deleted on the post", lambda: arrives(
            lambda: author.delete_comment(comment["id"]),
            (on_post, "comment_deleted", lambda e: e["comment_id"] == comment["id"])))
        resumed = step("resume: the feed reopened with its last id gets the missed post once",
                       lambda: self.resume(transport, feed, author, reader))
        step("a post deleted: post_deleted on both", lambda: arrives(
            lambda: author.delete_post(pid),
            *[(w, "post_deleted", lambda e: e["post_id"] == pid) for w in (resumed, on_post)]))
        step("nothing on the wrong channel", lambda: self.channels_kept(feed, resumed, on_post))
        for watcher in (feed, on_post, resumed):
            watcher.close()

    def typing(self, on_post, author, pid):
        """Announce typing until it arrives: typing is never replayed, so one announced
        between two long-polls is lost, and a typing user announces again (at most every 2 s)."""
        attempts = max(1, round(self.timeout / 2.5))
        for attempt in range(1, attempts + 1):
            try:
                return self.arrives(lambda: author.typing(pid), (
                    on_post, "typing", lambda e: e["user"]["id"] == author.user["id"]),
                    timeout=2.5)
            except SmokeFailure:
                if attempt == attempts:
                    raise
        return None

    def resume(self, transport, feed, author, reader):
        """Close *feed*, post, reopen it from its last id; return the new watcher."""
        last = feed.subscription.last_event_id
        seen = {event["id"] for _, event in feed.events if event.get("id")}
        feed.close()
        missed = author.create_post(f"missed over {transport}")
        resumed = self.watch(reader.follow_feed(transport, last_event_id=last),
                             f"{transport} feed (resumed)")
        resumed.expect(lambda e: e["type"] == "new_post" and e["post"]["id"] == missed["id"],
                       "new_post of the missed post", self.timeout)
        again = [event["type"] for _, event in resumed.events if event.get("id") in seen]
        if again:
            raise SmokeFailure(f"the resumed feed repeated events it had seen: {again}")
        return resumed

    @staticmethod
    def channels_kept(*watchers):
        """Fail when a channel received an event type that belongs to the other kind."""
        for watcher in watchers:
            wrong = POST_ONLY if "feed" in watcher.name else FEED_ONLY
            stray = sorted(wrong & set(watcher.types()))
            if stray:
                raise SmokeFailure(f"the {watcher.name} received {stray}")


def main(argv=None):
    """Parse arguments, run the check, print the outcome; exit 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an event")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="which of sse,ws,poll to check (default: all)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--ca-file", help="trust this CA bundle, e.g. a self-signed certificate")
    tls.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    args = parser.parse_args(argv)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or set(transports) - set(TRANSPORTS):
        parser.error(f"--transports takes a comma-separated subset of {','.join(TRANSPORTS)}")
    verify = False if args.insecure else (args.ca_file or True)
    try:
        print(Smoke(args.url.rstrip("/"), args.timeout, transports, verify).run())
    except SmokeFailure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

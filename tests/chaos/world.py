"""A population for load scenarios: feed owners who follow each other, their streams, a writer.

Owner *i* follows owners *i+1* and *i+2* (mod the count), so a post by owner *j* is an event on
three feeds (*j*, *j-1*, *j-2*): fan-out across channels as well as across streams. With
*large*, the first owners get more followers, enough to be large authors on a server started
with ``LARGE_AUTHOR_FOLLOWERS`` = :data:`LARGE_AUTHOR_FOLLOWERS`: their posts reach their
followers' feeds by the large-author channel, with compound ids. Every stream client
subscribes to one owner's feed with that owner's token.
"""
import time

import gevent

from tests.chaos.harness import remember
from tests.support.accounting import summarize
from tests.support.clients import RestUser
from tests.support.load import CLIENTS, Publisher

MIX = (("sse", 0.6), ("ws", 0.3), ("poll", 0.1))
# The threshold the servers of worlds with large authors start with (an owner has 2 followers).
LARGE_AUTHOR_FOLLOWERS = 4


class FeedWorld:
    """*owners* registered users in a follow ring on *server*; the first *large* of them large
    authors."""

    def __init__(self, server, owners=50, name="owner", large=0,
                 threshold=LARGE_AUTHOR_FOLLOWERS):
        self.server = server
        self.owners = [remember(RestUser(server.url, f"{name}{i}")) for i in range(owners)]
        count = len(self.owners)
        edges = {(i, (i + step) % count) for i in range(count) for step in (1, 2) if count > step}
        fans = []  # followers of the large owners who own no feed here, when owners are too few
        for author in range(large):
            have = sum(1 for _, followee in edges if followee == author)
            extra = [(reader, author) for reader in range(count)
                     if reader != author and (reader, author) not in edges]
            edges.update(extra[:threshold - have])
            short = max(0, threshold - have - len(extra))
            fans += [remember(RestUser(server.url, f"{name}fan{len(fans) + i}"))
                     for i in range(short - len(fans))]
            fans_jobs = [gevent.spawn(fan.follow, self.owners[author]) for fan in fans[:short]]
            gevent.joinall(fans_jobs, raise_error=True)
        #: the owner indexes of the large authors
        self.large = list(range(large))
        #: owner index -> the owner indexes following them
        self.followers = {a: {r for r, followee in edges if followee == a} for a in range(count)}
        jobs = [gevent.spawn(self.owners[reader].follow, self.owners[author])
                for reader, author in sorted(edges)]
        gevent.joinall(jobs, raise_error=True)
        self.publisher = None

    def feeds_of_author(self, author):
        """Return the owner indexes whose feed hears of a post by owner *author*."""
        author %= len(self.owners)
        return {author} | self.followers[author]

    def heads(self):
        """Return each owner's feed head id, read as any client can: a long-poll of 0 s
        (retried for a while: a worker just back from a fault may answer 503)."""
        jobs = [gevent.spawn(self._head, owner) for owner in self.owners]
        gevent.joinall(jobs, raise_error=True)
        return [job.value for job in jobs]

    @staticmethod
    def _head(owner, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            response = owner.call("GET", "/poll/feed?timeout=0")
            if response.status_code == 200 or time.monotonic() > deadline:
                return response.json()["cursor"]
            gevent.sleep(0.2)

    def clients(self, total, mix=MIX, base=None, from_head=True, **options):
        """Return *total* unstarted clients over every feed, by transport in *mix* shares.

        With *from_head* each starts from its feed's head id, as the pages' clients do; start
        them with ``start(resume=True)`` (:func:`~tests.support.load.start_all` ``resume``).
        """
        base = base or ("127.0.0.1", self.server.port)
        kinds = []
        for kind, share in mix:
            kinds += [kind] * int(round(total * share))
        kinds = (kinds + [mix[0][0]] * total)[:total]
        made = []
        heads = self.heads() if from_head else None
        for i, kind in enumerate(kinds):
            owner = i % len(self.owners)
            extra = options.get(kind, {})
            client = CLIENTS[kind](base, "feed", self.owners[owner].token,
                                   label=f"{kind}-{i}", **extra)
            client.owner = owner
            if heads:
                client.begin_at(heads[owner])
            made.append(client)
        return made

    def start_publisher(self, rate, duration, base_url=None):
        """Post ``rate`` times a second for *duration* seconds, authors in turn."""
        count = len(self.owners)

        def write(n):
            owner = self.owners[n % count]
            return owner.call("POST", "/api/posts", base_url=base_url,
                              json={"content": f"load {n} at {time.time():.3f}"})

        self.publisher = Publisher(write, rate, duration).start()
        return self.publisher

    def expected(self, answered_before=None):
        """Return ``{owner index: [post ids their feed must carry, in publish order]}``.

        :param answered_before: only posts whose 201 arrived before this time (epoch s).
        """
        feeds = {i: [] for i in range(len(self.owners))}
        done = sorted((n, body["id"]) for n, status, _, body, at in self.publisher.results
                      if status == 201 and (answered_before is None or at < answered_before))
        for n, post_id in done:
            for feed in self.feeds_of_author(n % len(self.owners)):
                feeds[feed].append(post_id)
        return feeds

    def refetch(self, client):
        """Do what a client does after resync_required: read its feed over REST, once per resync.

        (Its resume point stays the last event it saw, so a client that drops again before
        a new event arrives is told to resync again: a redundant refetch, never a loss.)
        Returns whether it refetched.
        """
        if client.stats.resyncs <= getattr(client, "resyncs_handled", 0):
            return False
        client.resyncs_handled = client.stats.resyncs
        # Newest first, page after page, back to a post it already had: a resync noticed late
        # (a slow machine) may cover more than one page.
        seen, before = set(client.post_ids), None
        while True:
            query = f"&before={before}" if before else ""
            page = self.owners[client.owner].call("GET", f"/api/feed?limit=100{query}").json()
            ids = [post["id"] for post in page["posts"]]
            client.post_ids.extend(ids)
            before = page["next_before"]
            if not before or seen.intersection(ids):
                return True

    def missing(self, clients, answered_before=None):
        """Return ``{client label: number of expected posts it has not received}`` (non-zero)."""
        expected = self.expected(answered_before)
        short = {}
        for client in clients:
            want = set(expected[client.owner])
            lacking = len(want - set(client.post_ids))
            if lacking:
                short[client.label] = lacking
        return short

    def wait_delivered(self, clients, timeout=20, answered_before=None, refetch=False):
        """Wait until every client has every expected post; return what is still missing.

        With *refetch*, clients told to resync read their feed over REST, as they should.
        """
        deadline = time.monotonic() + timeout
        while True:
            if refetch:
                for client in clients:
                    self.refetch(client)
            missing = self.missing(clients, answered_before)
            if not missing or time.monotonic() > deadline:
                return missing
            gevent.sleep(0.25)


def by_transport(clients):
    """Return ``{transport: summary}`` and ``"all"``."""
    result = {"all": summarize(clients)}
    for kind in ("sse", "ws", "poll"):
        group = [c for c in clients if c.transport == kind]
        if group:
            result[kind] = summarize(group)
    return result

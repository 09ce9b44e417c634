"""Large authors' events: one shared channel, routed in each process by author.

An author with many followers (:mod:`app.services.audience`) publishes each event once, on the
``large`` channel, instead of once per follower's feed. A process that holds feed streams of
such an author's followers subscribes to that channel once, however many streams it holds,
and hands each event to the local streams that follow its author: one dictionary lookup per
event, whatever the author's follower count.

The channel has one sequence for every large author, so a stream sees jumps in it whenever
someone it does not follow posts. The router sees every event of the channel, in order: it is
the one to tell a real gap (a lost message, a restarted history) from those jumps. On one, it
hands the event to nobody and asks every registered stream to check its place against the
channel's history instead, as a checkpoint does after a reconnect.
"""
from app.broker.errors import BrokerUnavailable
from app.events.channels import LARGE


class AuthorRouter:
    """The process's subscriber of the large-author channel (a hub subscriber).

    Streams register their inbox with the authors they follow; the inbox gets those authors'
    events (:meth:`~app.transports.delivery.Inbox.put`) and the channel's checkpoints
    (``check_large``).
    """

    channel = LARGE

    def __init__(self, broker):
        self.broker = broker
        self.by_author = {}  # author id -> the inboxes that follow them
        self.members = {}  # inbox -> the set of authors it follows here
        self._listening = False  # subscribed to the channel (or asked to be)
        #: The last position of the channel this process saw: every event up to it has been
        #: handed to the inboxes then registered for its author, or a checkpoint asked them
        #: to look.
        self.position = None

    # -- registrations (from the streams' greenlets) ------------------------------------------

    def join(self, inbox, authors):
        """Register *inbox* for *authors*; return the set the router keeps for it.

        Returns once this process is subscribed to the channel, so that a read of the
        channel that follows cannot miss an event published in between.

        :raises BrokerUnavailable: when the subscription could not be made.
        """
        followed = self.members.get(inbox)
        if followed is None:
            followed = self.members[inbox] = set()
        for author in authors:
            self._add(inbox, followed, author)
        try:
            if self._listening:
                # A later stream waits for the subscription an earlier one asked for, without
                # the broker's undoing of a failed subscribe: others are registered on it.
                self.broker.confirm(self)
                if not self._listening:  # the earlier one gave up meanwhile
                    raise BrokerUnavailable("the large-author channel is not subscribed")
            else:
                self._listening = True
                try:
                    self.broker.subscribe(self)
                except BaseException:
                    self._listening = False
                    raise
        except BaseException:
            self.leave(inbox)
            raise
        return followed

    def follow(self, inbox, author):
        """Add *author* to what a joined *inbox* gets."""
        followed = self.members.get(inbox)
        if followed is not None:
            self._add(inbox, followed, author)

    def unfollow(self, inbox, author):
        """Stop handing *author*'s events to *inbox*."""
        followed = self.members.get(inbox)
        if followed is not None and author in followed:
            followed.discard(author)
            self._discard(inbox, author)

    def leave(self, inbox):
        """Forget *inbox*; the process unsubscribes with the last one."""
        followed = self.members.pop(inbox, None)
        if followed is None:
            return
        for author in followed:
            self._discard(inbox, author)
        if not self.members and self._listening:
            self._listening = False
            self.broker.unsubscribe(self)
            self.position = None

    def _add(self, inbox, followed, author):
        followed.add(author)
        inboxes = self.by_author.get(author)
        if inboxes is None:
            inboxes = self.by_author[author] = set()
        inboxes.add(inbox)

    def _discard(self, inbox, author):
        inboxes = self.by_author.get(author)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self.by_author[author]

    # -- the hub's side (from the broker's listener) ------------------------------------------

    def put(self, message):
        """Hand one event of the channel to the inboxes following its author, if in order."""
        last = self.position
        if last is not None and message.epoch == last.epoch:
            if message.seq <= last.seq:
                return  # a checkpoint already covered it
            if message.seq == last.seq + 1:
                self.position = message.position
                for inbox in tuple(self.by_author.get(message.author, ())):
                    inbox.put(message)
                return
        # A jump in the one sequence (a lost message) or a new epoch; or the first event
        # since this process subscribed, which it cannot place: every stream checks.
        self.check(message.position, force=True)

    def check(self, head, force=False):
        """The channel's head is *head*: every registered stream compares it with its place.

        Nothing to do when this process already saw every event up to *head*.
        """
        last = self.position
        if not force and last is not None and head.epoch == last.epoch and head.seq <= last.seq:
            return
        self.position = head
        for inbox in tuple(self.members):
            inbox.check_large(head)

    def close(self, reason):
        """The process ends: the streams' own inboxes are closed through their channels."""
        self.position = None

    def __len__(self):
        return len(self.members)

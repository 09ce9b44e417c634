"""Large authors: their events go once to the shared large-author channel, and every follower's
feed stream still gets them on every transport, resumes them exactly, and follows, unfollows
and threshold crossings take effect on open streams — on one worker in-process, and on two
sharing Redis.

A large author's events carry compound ids (``<feed id>.<large id>``) on a follower's feed:
what these tests look for to know which way an event came.
"""
import gevent
import pytest

from tests.contract.test_transports import _id_after_one_post, _ready, _storm

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

TRANSPORTS = ["sse", "ws", "poll"]
THRESHOLD = 3  # followers from which an author is large, in these servers
HISTORY = 8  # events each channel, and each large author within the large-author channel, keeps
SERVER_SETTINGS = {"LARGE_AUTHOR_FOLLOWERS": THRESHOLD,  # read by conftest's server
                   "HISTORY_MAX_EVENTS": HISTORY}


def large_author(user, *readers):
    """Return a new author followed by *readers* and by as many more as make them large."""
    author = user()
    fans = list(readers) + [user() for _ in range(THRESHOLD - len(readers))]
    for fan in fans:
        fan.follow(author)
    return author


def contents(subscriber):
    return [e["post"]["content"] for e in subscriber.of_type("new_post")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_large_authors_post_reaches_each_follower_once_with_a_compound_id(
        user, subscribe, transport):
    readers = [user() for _ in range(THRESHOLD)]
    alice = large_author(user, *readers)
    carol = user()  # small: her posts still go to each follower's feed
    readers[0].follow(carol)
    feeds = [subscribe(transport, "feed", reader.token) for reader in readers]
    for feed in feeds:
        _ready(feed)
    post = alice.post("to many")
    for feed in feeds:
        [got] = feed.wait_type("new_post")
        assert got["post"]["id"] == post["id"] and "." in got["id"], got
    carol.post("to one")
    alice.post("again")
    got = feeds[0].wait_type("new_post", count=3)
    assert [e["post"]["content"] for e in got] == ["to many", "to one", "again"]
    assert len({e["id"] for e in got}) == 3 and all("." in e["id"] for e in got)
    for feed in feeds[1:]:
        feed.wait_type("new_post", count=2)
        gevent.sleep(0.2)
        assert contents(feed) == ["to many", "again"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_feed_resumes_exactly_what_large_and_small_authors_posted_meanwhile(
        user, subscribe, transport):
    bob = user()
    alice, zed = large_author(user, bob), large_author(user)  # bob follows alice, not zed
    carol = user()
    bob.follow(carol)
    last_id = _id_after_one_post(subscribe, transport, bob, alice)
    for content in ("alice 1", "carol 1", "zed 1", "alice 2", "carol 2"):
        {"alice": alice, "carol": carol, "zed": zed}[content.split()[0]].post(content)
    resumed = subscribe(transport, "feed", bob.token, last_event_id=last_id)
    resumed.wait_type("new_post", count=4)
    missed = contents(resumed)
    # Each author's events in order; across authors a feed promises no order.
    assert sorted(missed) == ["alice 1", "alice 2", "carol 1", "carol 2"]
    assert missed.index("alice 1") < missed.index("alice 2")
    assert missed.index("carol 1") < missed.index("carol 2")
    alice.post("live")
    resumed.wait_type("new_post", count=5)
    gevent.sleep(0.2)
    assert contents(resumed)[4:] == ["live"]
    assert not resumed.of_type("resync_required")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reader_of_a_quiet_large_author_resumes_exactly_however_busy_the_others(
        user, subscribe, transport):
    bob = user()
    alice, zed = large_author(user, bob), large_author(user)  # bob follows alice, not zed
    last_id = _id_after_one_post(subscribe, transport, bob, alice)
    for n in range(HISTORY + 4):  # more than the large-author channel's own history holds
        zed.post(f"zed {n}")
    alice.post("alice 1")
    zed.post("zed again")
    alice.post("alice 2")
    resumed = subscribe(transport, "feed", bob.token, last_event_id=last_id)
    resumed.wait_type("new_post", count=2)
    gevent.sleep(0.2)
    assert contents(resumed) == ["alice 1", "alice 2"]
    assert not resumed.of_type("resync_required")
    resumed.close()
    for n in range(HISTORY + 1):  # now more than alice's own window
        alice.post(f"alice {n + 3}")
    again = subscribe(transport, "feed", bob.token, last_event_id=last_id)
    again.wait_type("resync_required")
    again.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_large_author_position_no_longer_held_gets_resync_required(
        user, subscribe, transport):
    bob = user()
    alice = large_author(user, bob)
    own, large = _id_after_one_post(subscribe, transport, bob, alice).split(".")
    for stale in (f"{own}.0000-5", f"{own}.{large.split('-')[0]}-999999"):
        resumed = subscribe(transport, "feed", bob.token, last_event_id=stale)
        resumed.wait_type("resync_required")
        alice.post("after resync")
        resumed.wait_type("new_post")
        resumed.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_following_and_unfollowing_a_large_author_changes_an_open_stream(
        user, subscribe, transport):
    alice, carol, erin = large_author(user), user(), user()
    feed = subscribe(transport, "feed", erin.token)
    _ready(feed)
    alice.post("before follow")
    erin.follow(alice)
    alice.post("after follow")
    feed.wait_type("new_post")
    assert erin.call("DELETE", f"/api/users/{alice.username}/follow").status_code == 200
    alice.post("after unfollow")
    erin.follow(carol)
    carol.post("marker")
    feed.wait_type("new_post", count=2)
    gevent.sleep(0.3)
    assert contents(feed) == ["after follow", "marker"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_author_who_becomes_large_keeps_reaching_open_streams(user, subscribe, transport):
    hank, fans = user(), [user() for _ in range(THRESHOLD)]
    for fan in fans[:-1]:
        fan.follow(hank)
    feed = subscribe(transport, "feed", fans[0].token)
    _ready(feed)
    hank.post("while small")
    [small] = feed.wait_type("new_post")
    assert "." not in small["id"]
    fans[-1].follow(hank)  # the follow that makes hank large
    hank.post("now large")
    got = feed.wait_type("new_post", count=2)
    assert [e["post"]["content"] for e in got] == ["while small", "now large"]
    assert "." in got[1]["id"]
    last = feed.last_id
    feed.close()
    hank.post("while away")
    resumed = subscribe(transport, "feed", fans[0].token, last_event_id=last)
    assert [e["post"]["content"] for e in resumed.wait_type("new_post")] == ["while away"]


def test_a_reaction_storm_on_a_large_authors_post_reaches_feeds_conflated_to_the_final_counts(
        user, subscribe):
    bob = user()
    alice = large_author(user, bob)
    post = alice.post("going viral")
    feeds = [subscribe(t, "feed", bob.token) for t in TRANSPORTS]
    on_post = subscribe("sse", f"post/{post['id']}", bob.token)
    for subscriber in (*feeds, on_post):
        _ready(subscriber)
    changes, took = _storm([user() for _ in range(3)], post["id"], rounds=10)
    final = alice.call("GET", f"/api/posts/{post['id']}").json()["reaction_counts"]
    assert len(on_post.wait_type("post_reaction", count=changes)) == changes
    for feed in feeds:
        feed.wait_for(lambda f: (f.of_type("post_reaction") or [{}])[-1]
                      .get("reaction_data", {}).get("counts") == final)
        assert len(feed.of_type("post_reaction")) <= took + 2 < changes
        assert all("." in e["id"] for e in feed.of_type("post_reaction"))

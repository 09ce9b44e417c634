"""One user's concurrent writes of the same thing end in one row and no error.

A double click, two tabs, a client retrying: the same person's first reaction to a post (or
like of a comment, or follow) arrives several times at the same instant on different workers
of different servers sharing one PostgreSQL. Each must answer 200, and the database must hold
one row: the counts that everyone sees say so.
"""
import random

import gevent
import pytest

from tests.chaos.harness import record, remember, scaled
from tests.support.clients import RestUser

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

TYPES = ["like", "love", "haha", "wow", "sad", "angry"]
COPIES = 4  # the same write, sent this many times at once


@pytest.fixture(scope="module")
def servers(deployment, redis_url):
    database = deployment.database("postgres")
    return deployment.start(servers=2, workers=2, redis_url=redis_url, database_url=database,
                            RATELIMIT_ENABLED="false")


def at_once(user, servers, method, path, bodies):
    """Send one request per body at the same instant, spread over *servers*; return statuses."""
    calls = [gevent.spawn(user.call, method, path, base_url=servers[i % 2].url, json=body)
             for i, body in enumerate(bodies)]
    gevent.joinall(calls, raise_error=True)
    return [call.value.status_code for call in calls]


def test_concurrent_first_writes_of_one_user_end_in_one_row(servers):
    author = remember(RestUser(servers[0].url, "racedauthor"))
    people = [remember(RestUser(servers[i % 2].url, f"racer{i}")) for i in range(scaled(20, 5))]
    rounds = scaled(25, 5)
    statuses, wrong = {}, []

    def count(status):
        statuses[status] = statuses.get(status, 0) + 1

    for round_ in range(rounds):
        post = author.post(f"race {round_}")
        comment = author.call("POST", f"/api/posts/{post['id']}/comments",
                              json={"content": "like me"}).json()
        target = remember(RestUser(servers[round_ % 2].url, f"target{round_}"))

        def race(person):
            kinds = random.sample(TYPES, COPIES)
            for status in at_once(person, servers, "PUT", f"/api/posts/{post['id']}/reaction",
                                  [{"type": kind} for kind in kinds]):
                count(status)
            for status in at_once(person, servers, "PUT", f"/api/comments/{comment['id']}/like",
                                  [None] * COPIES):
                count(status)
            for status in at_once(person, servers, "PUT",
                                  f"/api/users/{target.username}/follow", [None] * COPIES):
                count(status)

        gevent.joinall([gevent.spawn(race, person) for person in people], raise_error=True)
        seen = author.call("GET", f"/api/posts/{post['id']}").json()
        likes = author.call("GET", f"/api/posts/{post['id']}/comments").json()["comments"][0]
        followers = author.call("GET", f"/api/users/{target.username}").json()
        got = (sum(seen["reaction_counts"].values()), likes["like_count"],
               followers["followers_count"])
        if got != (len(people),) * 3:
            wrong.append({"round": round_, "reactions, likes, followers": got})
    errors = sum(n for status, n in statuses.items() if status != 200)
    record("write races", "test_concurrent_first_writes_of_one_user_end_in_one_row",
           f"each of many users sends the same first reaction, comment like and follow {COPIES} "
           "times at once, over 2 servers × 2 workers on one PostgreSQL",
           {"users": len(people), "rounds": rounds, "requests": sum(statuses.values()),
            "statuses": statuses, "rounds with a wrong count": len(wrong)},
           "every answer 200; one row per user (counts exact)", errors == 0 and not wrong)
    assert errors == 0, statuses
    assert not wrong, wrong

"""The peer: a minimal Flask-SSE app with the routes the benchmark drives.

Streams are Flask-SSE's own blueprint (``GET /stream?channel=…``: one Redis pub/sub connection
and one JSON decode + encode per subscriber and message). The write routes mimic ours closely
enough for the same load generator: register, follow, post (published to the author's and
every follower's feed), comment (published to the post's channel). Event objects have our
shape (``type``, ``id`` from a per-channel counter, ``ts``, payload), so the same analysis
finds latency and id gaps. Publishing uses Flask-SSE's message format over one reused Redis
client and a pipeline (``sse.publish`` would open a new connection per call; the peer is spared
that). No authentication, no history, no database: only what Flask-SSE itself does.
"""
import os
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, json, jsonify, request
from flask_sse import Message, sse
from redis import StrictRedis

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app.register_blueprint(sse, url_prefix="/stream")
PREFIX = os.environ.get("REDIS_PREFIX", "peer")
redis = StrictRedis.from_url(app.config["REDIS_URL"])


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _user():
    return request.headers.get("Authorization", "").partition(" ")[2]


def _author(user_id):
    name = (redis.hget(f"{PREFIX}:names", user_id) or b"").decode()
    return {"id": user_id, "username": name, "display_name": name}


def _publish(channels, event_type, payload):
    """Publish one event per channel with a per-channel id, as Flask-SSE messages."""
    pipe = redis.pipeline(transaction=False)
    for channel in channels:
        pipe.incr(f"{PREFIX}:seq:{channel}")
    ids = pipe.execute()
    ts = int(time.time() * 1000)
    for channel, seq in zip(channels, ids):
        event = {"type": event_type, "id": str(seq), "ts": ts, **payload}
        message = Message(event, type=event_type, id=str(seq))
        pipe.publish(f"{PREFIX}:{channel}", json.dumps(message.to_dict()))
    pipe.execute()


@app.get("/healthz")
def healthz():
    redis.ping()
    return {"status": "ok"}


@app.post("/api/auth/register")
def register():
    user_id, username = str(uuid.uuid4()), request.get_json()["username"]
    redis.hset(f"{PREFIX}:names", user_id, username)
    redis.hset(f"{PREFIX}:ids", username, user_id)
    return jsonify(user={"id": user_id, "username": username}, access_token=user_id), 201


@app.put("/api/users/<username>/follow")
def follow(username):
    author = redis.hget(f"{PREFIX}:ids", username).decode()
    redis.sadd(f"{PREFIX}:followers:{author}", _user())
    return {"following": True}


@app.post("/api/posts")
def create_post():
    author = _user()
    post = {"id": str(uuid.uuid4()), "author": _author(author),
            "content": request.get_json()["content"], "created_at": _now(), "updated_at": _now(),
            "reaction_counts": {t: 0 for t in ("like", "love", "haha", "wow", "sad", "angry")},
            "comment_count": 0}
    followers = [f.decode() for f in redis.smembers(f"{PREFIX}:followers:{author}")]
    _publish([f"feed:{uid}" for uid in [author, *followers]], "new_post", {"post": post})
    return post, 201


@app.post("/api/posts/<post_id>/comments")
def create_comment(post_id):
    comment = {"id": str(uuid.uuid4()), "post_id": post_id, "author": _author(_user()),
               "content": request.get_json()["content"], "created_at": _now(), "like_count": 0}
    _publish([f"post:{post_id}"], "new_comment", {"post_id": post_id, "comment": comment})
    return comment, 201

"""Micro-measurements behind docs/fanout.md, on a private redis-server: what one shared
"large-author log" costs.

``python -m bench.fanout_probe`` prints, in Redis CPU (``INFO cpu``, Redis's own):

* a resume over the log: a Lua ``XRANGE`` scan of the N entries after the cursor, keeping those
  of the k authors the reader follows, against a per-author index (one sorted set of log
  positions per author, read with ``ZRANGE … BYSCORE`` for the k authors, then the matching
  entries fetched by id);
* one ``PUBLISH`` of a 1 KB event on one channel with W subscribed connections (W workers).
"""
import argparse
import random
import socket
import time

import redis

from bench.targets import PrivateRedis

SCAN = """
local wanted = {}
for i = 2, #ARGV do wanted[ARGV[i]] = true end
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')) do
  if wanted[e[2][2]] then out[#out + 1] = e[2][4] end
end
return #out
"""

INDEXED = """
local ids = {}
for i = 2, #ARGV do
  for _, id in ipairs(redis.call('ZRANGE', 'idx:' .. ARGV[i], '(' .. ARGV[1], '+inf',
                                 'BYSCORE')) do ids[#ids + 1] = tonumber(id) end
end
table.sort(ids)
local n = 0
for _, id in ipairs(ids) do
  n = n + #redis.call('XRANGE', KEYS[1], id .. '-0', id .. '-0')
end
return n
"""


def _cpu(client):
    info = client.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def _per_call(client, call, repeat):
    before = _cpu(client)
    for _ in range(repeat):
        result = call()
    return (_cpu(client) - before) / repeat * 1000, result


def resume_scan(client, entries, authors=1000, followed=20, repeat=20):
    """Return ms of Redis CPU per resume over *entries* log entries, scan vs index."""
    client.flushall()
    body = "x" * 1000
    pipe = client.pipeline(transaction=False)
    for seq in range(1, entries + 1):
        author = f"a{random.randrange(authors)}"
        pipe.xadd("log", {"a": author, "m": body}, id=f"{seq}-0")
        pipe.zadd(f"idx:{author}", {seq: seq})
        if seq % 5000 == 0:
            pipe.execute()
    pipe.execute()
    mine = [f"a{i}" for i in range(followed)]
    scan = client.register_script(SCAN)
    indexed = client.register_script(INDEXED)
    scan_ms, found = _per_call(client, lambda: scan(keys=["log"], args=[0, *mine]), repeat)
    index_ms, found2 = _per_call(client, lambda: indexed(keys=["log"], args=[0, *mine]), repeat)
    assert found == found2
    return {"entries": entries, "followed": followed, "matches": found,
            "scan_ms": round(scan_ms, 2), "index_ms": round(index_ms, 2)}


def publish_cost(port, workers, repeat=2000):
    """Return µs of Redis CPU per PUBLISH of 1 KB to one channel with *workers* subscribers."""
    client = redis.Redis(port=port)
    subscribers = []
    for _ in range(workers):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"SUBSCRIBE large\r\n")
        sock.recv(1024)
        sock.setblocking(False)
        subscribers.append(sock)
    body = b"x" * 1000

    def drain():
        for sock in subscribers:
            try:
                while sock.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    before = _cpu(client)
    for i in range(repeat):
        client.publish("large", body)
        if i % 100 == 0:
            drain()
    cost = (_cpu(client) - before) / repeat * 1e6
    drain()
    for sock in subscribers:
        sock.close()
    return {"workers": workers, "publish_us": round(cost, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_probe", description=__doc__)
    parser.add_argument("--entries", default="1000,10000,100000")
    args = parser.parse_args(argv)
    server = PrivateRedis(maxmemory="2gb").start()
    try:
        client = redis.Redis(port=server.port)
        for n in (int(x) for x in args.entries.split(",")):
            print("resume", resume_scan(client, n), flush=True)
        client.flushall()
        for workers in (1, 2, 8, 32):
            print("publish", publish_cost(server.port, workers), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"({time.time() - start:.0f} s)")

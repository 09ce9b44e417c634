"""Fuzzing the API (schemathesis), WebSocket frames, Last-Event-ID and cursors, and
deeply nested JSON, against one two-worker server. Whatever arrives: no answer ≥ 500, no
traceback in the server's log, no worker restarted.
"""
import json
import re
import subprocess
import tempfile
import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chaos.harness import FULL, record, remember, scaled
from tests.support.clients import RestUser
from tests.support.rawhttp import Closed, Conn, client_frame, read_frame, request_bytes
from tests.support.servers import BIN
from tests.support.sessions import session as fresh_session

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.redis]

API_CASES = 1000 if FULL else 50  # schemathesis examples per operation (fuzzing phase)
CASES = scaled(1000, minimum=100)  # Hypothesis cases of each of the other fuzzers
FIGURES = {}


@pytest.fixture(scope="module")
def server(deployment, redis_url):
    # The full tier fuzzes for longer than an access token lives by default (15 min).
    [server] = deployment.start(workers=2, redis_url=redis_url, STREAMS_PER_USER=1000,
                                WS_MESSAGES_PER_SECOND=10000, WS_MESSAGE_BURST=10000,
                                ACCESS_TOKEN_SECONDS=7200)
    server.initial_pids = sorted(server.worker_pids())
    yield server
    log = server.log()
    record("fuzzing", "test_fuzz (module)", "after every fuzzer of this module",
           {"tracebacks in the server log": log.count("Traceback"),
            "unhandled exceptions logged": log.count("unhandled exception"),
            "workers booted": log.count("Booting worker"),
            "worker pids unchanged": sorted(server.worker_pids()) == server.initial_pids},
           "0 tracebacks, 0 worker restarts",
           "Traceback" not in log and log.count("Booting worker") == 2)


@pytest.fixture(scope="module")
def fuzzer(server):
    return remember(RestUser(server.url, "fuzzer"))


def healthy(server):
    """Assert the server is as it started: same workers, no traceback logged."""
    log = server.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    assert log.count("Booting worker") == 2, "a worker restarted"
    assert sorted(server.worker_pids()) == server.initial_pids


ACCESS = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|TRACE|CONNECT|[A-Z]+) (\S+) '
                    r'HTTP/[\d.]+" (\d{3})')


def schemathesis(server, token, *extra, cases=API_CASES):
    """Run the schemathesis CLI; return ``(exit code, requests by method and path, output)``.

    The count comes from the server's own access log (every request that reached it, with
    the status it got), not from schemathesis's report, which keeps only distinct cases.
    """
    start = len(server.log())
    command = [str(BIN / "st"), "run", f"{server.url}/api/openapi.json", "--no-color",
               "--checks", "not_a_server_error", "-n", str(cases),
               "-H", f"Authorization: Bearer {token}", "--seed", "20261128",
               "--suppress-health-check", "all", "--request-timeout", "20", "-w", "2",
               "--generation-database", "none", *extra]
    # In a scratch directory: schemathesis may leave files where it runs.
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=scratch)
    time.sleep(0.5)  # the last access-log lines
    seen = [(m.group(1), m.group(2).split("?")[0], int(m.group(3)))
            for m in ACCESS.finditer(server.log()[start:])]
    return done.returncode, seen, done.stdout[-3000:]


def by_operation(seen, spec):
    """Return ``({"METHOD /template": requests}, statuses)`` of access-log entries."""
    templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "/?$"), path)
                 for path in spec["paths"]]
    counts, statuses = Counter(), Counter()
    for method, path, status in seen:
        statuses[status] += 1
        for pattern, template in templates:
            if pattern.match(path):
                counts[f"{method} {template}"] += 1
                break
    return counts, statuses


@pytest.mark.timeout(3600)
def test_schemathesis_finds_no_server_error_on_any_route(server, fuzzer):
    spec = requests.get(f"{server.url}/api/openapi.json", timeout=10).json()
    code, seen, out = schemathesis(server, fuzzer.token, "--exclude-path", "/api/auth/logout")
    # Logout revokes the token it is called with: fuzz it with a session of its own.
    throwaway = remember(RestUser(server.url, "fuzz_logout"))
    code_out, seen_logout, out_logout = schemathesis(server, throwaway.token,
                                                     "--include-path", "/api/auth/logout")
    spec = requests.get(f"{server.url}/api/openapi.json", timeout=10).json()
    breadth = []
    if FULL:
        # Breadth: each write route alone, so that no other route supplies its ids and every
        # one of its cases is drawn afresh (together, ids come from a small pool of real ones).
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method in ("post", "put", "patch", "delete") and path != "/api/auth/logout" \
                        and ("requestBody" in operation or operation.get("parameters")):
                    # A session of its own: a stray logout (the coverage phase probes other
                    # routes) must not revoke the token the next runs and tests use.
                    own = remember(RestUser(server.url, f"fuzz_{len(breadth)}"))
                    breadth.append(schemathesis(
                        server, own.token, "--include-path", path, "--include-method",
                        method.upper(), "--exclude-path", "/api/auth/logout",
                        "--phases", "coverage,fuzzing"))
        code = max([code] + [run[0] for run in breadth])
        seen += [entry for run in breadth for entry in run[1]]
    per_operation, statuses = by_operation(seen + seen_logout, spec)
    # Operations that take no input at all (refresh, stream-ticket, logout) have few cases.
    inputs = {f"{method.upper()} {path}" for path, operations in spec["paths"].items()
              for method, operation in operations.items()
              if "requestBody" in operation or operation.get("parameters")}
    writes = {op: n for op, n in per_operation.items() if op.split()[0] in (
        "POST", "PUT", "PATCH", "DELETE") and op in inputs}
    errors = sum(n for status, n in statuses.items() if status >= 500)
    least = min(writes, key=writes.get)
    FIGURES["schemathesis"] = errors
    declared = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    figures = {"operations": len(declared & set(per_operation)),
               "write operations with inputs": len(writes),
               "requests (access log)": sum(statuses.values()), "answers ≥ 500": errors,
               "fewest cases on a write route with inputs": f"{writes[least]} ({least})",
               "statuses": dict(sorted(statuses.items()))}
    record("fuzzing", "test_schemathesis_finds_no_server_error_on_any_route",
           f"schemathesis {_version()} against /api/openapi.json: examples, coverage, "
           f"fuzzing (-n {API_CASES}) and stateful phases, every operation", figures,
           "0 answers ≥ 500 (≥ 1,000 cases per write route in the full tier)",
           code == 0 and code_out == 0 and errors == 0)
    assert errors == 0 and code == 0 and code_out == 0, out + out_logout
    healthy(server)


def _version():
    out = subprocess.run([str(BIN / "st"), "--version"], capture_output=True, text=True).stdout
    return out.strip().split()[-1] if out else "?"


# -- WebSocket frames ---------------------------------------------------------------------------


def ws_open(server, path, token):
    conn = Conn("127.0.0.1", server.port, timeout=5)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    conn.send(request_bytes("GET", f"/ws/{path}?token={token}", f"127.0.0.1:{server.port}",
                            {"Upgrade": "websocket", "Connection": "Upgrade",
                             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}))
    status, _ = conn.read_head()
    assert status == 101
    opcode, payload = read_frame(conn)
    assert b"connection_established" in payload
    return conn


def drain(conn, until=0.3):
    """Read what the server sends for *until* seconds; return the close code, if it closed."""
    conn.sock.settimeout(until)
    try:
        while True:
            opcode, payload = read_frame(conn)
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
    except (Closed, OSError):
        return None


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=30)
json_values = scalars | st.lists(scalars, max_size=4) | st.dictionaries(
    st.text(max_size=10), scalars | st.lists(scalars, max_size=3), max_size=4)
messages = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["ping", "typing", "pong", "subscribe", ""])},
                          optional={"timestamp": json_values, "user": json_values,
                                    "post_id": json_values}).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
)


@pytest.mark.timeout(3600)
def test_websocket_messages_never_break_the_socket_or_the_server(server, fuzzer):
    post = fuzzer.post("fuzz target")
    codes = Counter()

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(batch=st.lists(messages, min_size=1, max_size=5))
    def case(batch):
        conn = ws_open(server, f"post/{post['id']}", fuzzer.token)
        try:
            for text in batch:
                conn.send(client_frame(0x1, text.encode("utf-8", "surrogatepass")))
            conn.send(client_frame(0x1, b'{"type": "ping", "timestamp": 1}'))
            conn.sock.settimeout(5)
            while True:
                opcode, payload = read_frame(conn)
                if opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big")
                    codes[code] += 1
                    assert code in (1007, 1008, 1009), code
                    return
                if opcode == 0x1 and json.loads(payload).get("type") == "pong":
                    codes["pong"] += 1
                    return
        finally:
            conn.close()

    case()
    FIGURES["ws messages"] = dict(codes)
    record("fuzzing", "test_websocket_messages_never_break_the_socket_or_the_server",
           "Hypothesis WebSocket text messages (JSON of any shape, typing/ping with odd fields, "
           "non-JSON), then a ping", {"cases": CASES, "outcomes": dict(codes)},
           "the socket answers pong (or closes 1007/1008/1009); no 1011", True)
    healthy(server)


@st.composite
def raw_frames(draw):
    """A WebSocket frame that may break every rule: opcodes, RSV bits, masking, lengths."""
    payload = draw(st.binary(max_size=200))
    fin = draw(st.booleans())
    rsv = draw(st.integers(0, 7))
    opcode = draw(st.integers(0, 15))
    masked = draw(st.booleans())
    size = draw(st.sampled_from([len(payload), len(payload), 0, 125, 126, 65535, 65536,
                                 (1 << 63) - 1]))
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + size.to_bytes(8, "big")
    mask = draw(st.binary(min_size=4, max_size=4)) if masked else b""
    return head + mask + payload


@pytest.mark.timeout(3600)
def test_malformed_websocket_frames_are_refused_without_a_traceback(server, fuzzer):
    closes = Counter()

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(raw_frames(), min_size=1, max_size=3))
    def case(frames):
        conn = ws_open(server, "feed", fuzzer.token)
        try:
            for frame in frames:
                conn.send(frame)
            closes[drain(conn, until=0.2)] += 1
        except OSError:
            closes["reset"] += 1
        finally:
            conn.close()

    case()
    # Still serving, on the same workers.
    ws_open(server, "feed", fuzzer.token).close()
    FIGURES["raw frames"] = dict(closes)
    record("fuzzing", "test_malformed_websocket_frames_are_refused_without_a_traceback",
           "Hypothesis raw frames: any opcode, RSV bits, unmasked, lengths up to 2^63",
           {"cases": CASES, "server closes": {str(k): v for k, v in closes.items()}},
           "closed or ignored; no traceback; no restart", True)
    healthy(server)


# -- resume points and cursors ------------------------------------------------------------------

def quick(value):
    """Keep long-poll timeouts that answer at once: invalid ones, and waits of at most 50 ms
    (an empty one means the default 25 s)."""
    if not value.strip():
        return False
    try:
        return not 0.05 < float(value) < float("inf")
    except ValueError:
        return True


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    blacklist_characters="\x7f"), max_size=80)


@pytest.mark.timeout(3600)
def test_any_last_event_id_or_cursor_is_answered_below_500(server, fuzzer):
    statuses = Counter()
    token = fuzzer.token
    session = fresh_session()
    head = session.get(f"{server.url}/poll/feed?timeout=0",
                       headers={"Authorization": f"Bearer {token}"}).json()["cursor"]
    epoch = head.rsplit("-", 1)[0]
    # Parts that look numeric to str.isdigit() but are not ASCII digits ("²", "٣", "９")
    # reached int() once and answered 500.
    digits = st.text(st.one_of(st.characters(categories=("Nd", "No", "Nl")),
                               st.sampled_from("0123456789")), min_size=1, max_size=8)
    ids = st.one_of(header_text, st.text(max_size=80),
                    st.integers(-10, 10 ** 20).map(lambda n: f"{epoch}-{n}"),
                    st.integers(0, 10 ** 6).map(lambda n: f"{n}-{n}"),
                    st.builds(lambda a, b: f"{a}-{b}", st.one_of(st.just(epoch), digits), digits))

    latin_digits = st.text(st.sampled_from("0123456789\u00b2\u00b3\u00b9\u00bc\u00bd\u00be"),
                           min_size=1, max_size=8)
    headers = st.one_of(header_text, st.builds(lambda a, b: f"{a}-{b}", latin_digits,
                                               latin_digits))

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(header=headers, query=ids, cursor=ids,
           timeout=st.one_of(st.text(max_size=10).filter(quick), st.floats().map(str).filter(quick),
                             st.sampled_from(["0", "0.01", "-1", "inf", "nan", "1e309", " 0 "])))
    def case(header, query, cursor, timeout):
        auth = {"Authorization": f"Bearer {token}"}
        # Raw bytes: the header goes out exactly as drawn (any Latin-1, leading spaces too).
        sse = Conn("127.0.0.1", server.port, timeout=10)
        sse.send(request_bytes("GET", f"/stream/feed?last_event_id={quote(query)}",
                               f"127.0.0.1:{server.port}", {**auth, "Last-Event-ID": header}))
        sse_status, sse_headers = sse.read_head()
        statuses[sse_status] += 1
        if sse_status == 200:
            assert b"connection_established" in sse.read_chunk()
        sse.close()
        params = {"cursor": cursor, "timeout": timeout}
        poll = session.get(f"{server.url}/poll/feed", params=params, headers=auth, timeout=70)
        statuses[poll.status_code] += 1
        assert poll.status_code < 500 and poll.headers["Content-Type"].startswith(
            "application/json")
        conn = Conn("127.0.0.1", server.port, timeout=10)
        conn.send(request_bytes("GET", f"/ws/feed?token={token}&last_event_id={quote(query)}",
                                f"127.0.0.1:{server.port}",
                                {"Upgrade": "websocket", "Connection": "Upgrade",
                                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                 "Sec-WebSocket-Version": "13"}))
        status, _ = conn.read_head()
        statuses[status] += 1
        conn.close()
        assert max(sse_status, status) < 500

    case()
    FIGURES["ids"] = dict(statuses)
    record("fuzzing", "test_any_last_event_id_or_cursor_is_answered_below_500",
           "Hypothesis Last-Event-ID headers, ?last_event_id= on SSE and WebSocket, ?cursor= and "
           "?timeout= on long-poll", {"cases": CASES, "statuses": dict(statuses)},
           "0 answers ≥ 500", all(s < 500 for s in statuses))
    healthy(server)


# -- deeply nested JSON ---------------------------------------------------------------------


def nested(depth, kind):
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"content":' * depth + '"x"' + "}" * depth
    return '{"content": ' + "[" * depth + "]" * depth + "}"


def test_deeply_nested_json_is_refused_with_400_or_422(server, fuzzer):
    post = fuzzer.post("nest")
    comment = fuzzer.call("POST", f"/api/posts/{post['id']}/comments",
                          json={"content": "c"}).json()
    spec = requests.get(f"{server.url}/api/openapi.json", timeout=10).json()
    answers = Counter()
    bad, off = [], []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation or path == "/api/auth/logout":
                continue
            url = server.url + path.replace("{post_id}", post["id"]).replace(
                "{comment_id}", comment["id"]).replace("{username}", "fuzzer")
            # A feature this deployment runs without (Web Push with no VAPID key) answers
            # 404 to any body: nothing there parses JSON.
            if requests.request(method.upper(), url, json={}, timeout=30, headers={
                    "Authorization": f"Bearer {fuzzer.token}"}).status_code == 404:
                off.append(f"{method.upper()} {path}")
                continue
            for depth in (500, 1100, 20000, 100000):
                for kind in ("array", "object", "field"):
                    body = nested(depth, kind)
                    response = requests.request(method.upper(), url, data=body, timeout=30,
                                                headers={"Authorization": f"Bearer {fuzzer.token}",
                                                         "Content-Type": "application/json"})
                    answers[response.status_code] += 1
                    if response.status_code not in (400, 413, 422):
                        bad.append((method, path, depth, kind, response.status_code))
    record("fuzzing", "test_deeply_nested_json_is_refused_with_400_or_422",
           "JSON nested 500 to 100,000 deep (arrays, objects, a nested field) on every route "
           "with a body", {"requests": sum(answers.values()), "statuses": dict(answers),
                           "routes off in this deployment (404)": off},
           "400/422 (413 over 64 KiB), never a crash", not bad)
    assert not bad, bad
    healthy(server)

"""The results table, our ratios to Flask-SSE and nchan, and the goals checked."""


def fmt(value, digits=0):
    """Return a figure as the tables print it: thousands separated, "—" when unknown."""
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}" if isinstance(value, (int, float)) else str(value)


def _ratio(a, b):
    if not a or not b:
        return None
    return round(a / b, 2)


PEERS = {"flask_sse": "Flask-SSE", "nchan": "nchan"}


def compare(results):
    """Return, per peer and scenario run by both, ours ÷ theirs (throughput) and theirs ÷ ours
    (costs): above 1 is better for us."""
    ours = {r["scenario"]: r for r in results if r["target"] == "ours"}
    out = []
    for peer in PEERS:
        theirs_by = {r["scenario"]: r for r in results if r["target"] == peer}
        for name, mine in ours.items():
            theirs = theirs_by.get(name)
            if theirs is None:
                continue
            out.append({
                "peer": peer, "scenario": name,
                "deliveries_per_s": _ratio(mine["deliveries_per_s"], theirs["deliveries_per_s"]),
                "server_cpu_per_delivery": _ratio(theirs["server_cpu_us_per_delivery"],
                                                  mine["server_cpu_us_per_delivery"]),
                "p99": _ratio(theirs["latency_ms"]["p99"], mine["latency_ms"]["p99"]),
                "idle_rss_per_stream": _ratio(theirs.get("idle_rss_kb_per_stream"),
                                              mine.get("idle_rss_kb_per_stream")),
            })
    return out


def _get(results, scenario, target="ours"):
    for r in results:
        if r["scenario"] == scenario and r["target"] == target:
            return r
    return None


def check_targets(results):
    """Return each target of the benchmark with the measured figure and whether it is met."""
    checks = []

    def check(name, measured, ok, unit=""):
        checks.append({"target": name, "measured": measured, "unit": unit,
                       "met": None if measured is None else bool(ok)})

    mx, peer = _get(results, "sse_1ch_max"), _get(results, "sse_1ch_max", "flask_sse")
    if mx:
        ratio = _ratio(mx["deliveries_per_s"], peer["deliveries_per_s"]) if peer else None
        check("1 channel, max rate: ≥ 3× Flask-SSE deliveries/s", ratio,
              ratio is not None and ratio >= 3, "×")
        cpu = mx["server_cpu_us_per_delivery"]
        check("1 channel, max rate: ≤ 40 µs server CPU per delivery", cpu,
              cpu is not None and cpu <= 40, "µs")
        kb = mx.get("idle_rss_kb_per_stream")
        check("≤ 16 KB server RSS per idle SSE stream", kb, kb is not None and kb <= 16, "KB")
    r = _get(results, "sse_1ch_2eps")
    if r:
        p99 = r["latency_ms"]["p99"]
        check("1 channel at 2 events/s: p99 ≤ 200 ms", p99, p99 is not None and p99 <= 200, "ms")
    r = next((x for x in results if x["target"] == "ours"
              and x["scenario"].startswith("sse_") and "ch_" in x["scenario"]
              and x["channels"] > 1), None)
    if r:
        p99 = r["latency_ms"]["p99"]
        check(f"{r['channels']} channels, {r['events']} events: p99 ≤ 20 ms", p99,
              p99 is not None and p99 <= 20, "ms")
    r = _get(results, "sse_feed_fanout")
    if r:
        p99 = r["latency_ms"]["p99"]
        check(f"feed fan-out to {r['streams']} followers: p99 ≤ 250 ms", p99,
              p99 is not None and p99 <= 250, "ms")
    for scenario, workers in (("sse_1ch_1worker_2eps", "one worker"),
                              ("sse_1ch_2workers_2eps", "two workers")):
        r = _get(results, scenario)
        if r:
            bad = r["errors"] + r["lost"] + r["gaps"]
            check(f"{r['streams']:,} streams on {workers} without errors", bad, bad == 0,
                  "errors+losses")
    r = _get(results, "sse_1ch_2workers_2eps")
    if r:
        p99 = r["latency_ms"]["p99"]
        check(f"{r['streams']:,} streams on two workers at 2 events/s: p99 ≤ 250 ms", p99,
              p99 is not None and p99 <= 250, "ms")
    ws = _get(results, "ws_1ch_max")
    if ws and mx and ws["server_cpu_us_per_delivery"] and mx["server_cpu_us_per_delivery"]:
        ratio = _ratio(ws["server_cpu_us_per_delivery"], mx["server_cpu_us_per_delivery"])
        check("WebSocket CPU per delivery ≤ 1.2× SSE's", ratio, ratio <= 1.2, "×")
    _check_against_nchan(results, check)
    return checks


def _cost(result, key):
    if result is None:
        return None
    return result["latency_ms"]["p99"] if key == "p99" else result[key]


def _check_against_nchan(results, check):
    """The goals against nchan: ours ÷ nchan's, from the same run (≤ 1: as cheap or better)."""
    poll_name = next((r["scenario"] for r in results if r["scenario"].startswith("poll_1ch_")),
                     None)
    for scenario, key, label, limit in (
            ("sse_1ch_2eps", "server_cpu_us_per_delivery",
             "1 channel at 2 events/s: server CPU per delivery ≤ nchan's", 1.0),
            ("sse_1ch_2eps", "p99", "1 channel at 2 events/s: p99 ≤ nchan's", 1.0),
            (poll_name, "server_cpu_us_per_delivery",
             "long-poll: server CPU per delivery ≤ 2× nchan's long-poll", 2.0)):
        ours, theirs = _get(results, scenario), _get(results, scenario, "nchan")
        if ours and theirs:
            ratio = _ratio(_cost(ours, key), _cost(theirs, key))
            check(label, ratio, ratio is not None and ratio <= limit, "× nchan")
    poll, sse = _get(results, poll_name), _get(results, "sse_1ch_2eps")
    if poll and sse:
        ratio = _ratio(poll["server_cpu_us_per_delivery"], sse["server_cpu_us_per_delivery"])
        check("long-poll CPU per delivery ≤ 10× SSE's", ratio,
              ratio is not None and ratio <= 10, "×")


COLUMNS = [("scenario", "scenario"), ("target", "server"), ("streams", "streams"),
           ("events", "events"), ("deliveries_per_s", "deliveries/s"),
           ("server_cpu_us_per_delivery", "CPU µs/deliv."),
           ("redis_cpu_us_per_delivery", "Redis µs"),
           ("p50", "p50 ms"), ("p90", "p90 ms"), ("p99", "p99 ms"), ("max", "max ms"),
           ("idle_rss_kb_per_stream", "RSS KB/stream"), ("problems", "lost/gaps/err"),
           ("loadgen_cpu_us_per_delivery", "loadgen µs")]


def _row(r):
    lat = r["latency_ms"]
    values = {**r, **lat, "problems": f"{r['lost']}/{r['gaps']}/{r['errors']}"}
    out = []
    for key, _ in COLUMNS:
        value = values.get(key)
        if key in ("p50", "p90", "p99", "max") and value is not None:
            out.append(f"{value:,.1f}")
        elif key in ("server_cpu_us_per_delivery", "redis_cpu_us_per_delivery",
                     "loadgen_cpu_us_per_delivery", "idle_rss_kb_per_stream") \
                and value is not None:
            out.append(f"{value:,.1f}")
        else:
            out.append(fmt(value))
    return out


def markdown(headers, rows):
    """Return a Markdown table."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(document):
    """Return the whole report as Markdown text."""
    machine = document["machine"]
    parts = [f"## Benchmark ({document['mode']}) — {document['date']}",
             f"{machine['cpu']}, {machine['cores']} cores, Linux {machine['kernel']}, "
             f"Python {machine['python']}, Redis {machine['redis']}; load generator: "
             f"{document['loadgen']['event_loop']}; command: `{document['command']}`", ""]
    rows = [_row(r) for r in sorted(document["results"], key=lambda r: (r["scenario"],
                                                                         r["target"]))]
    if rows:
        parts.append(markdown([label for _, label in COLUMNS], rows))
    for peer, label in PEERS.items():
        rows = [c for c in document["comparison"] if c.get("peer", "flask_sse") == peer]
        if not rows:
            continue
        parts += ["", f"Ours compared with {label} (higher is better for us):", ""]
        parts.append(markdown(
            ["scenario", "deliveries/s ×", "CPU per delivery ×", "p99 ×", "idle RSS ×"],
            [[c["scenario"], *(fmt(c[k], 2) for k in ("deliveries_per_s",
                                                       "server_cpu_per_delivery", "p99",
                                                       "idle_rss_per_stream"))]
             for c in rows]))
    if document["targets"]:
        parts += ["", "Targets:", ""]
        parts.append(markdown(["target", "measured", "met"], [
            [t["target"], f"{fmt(t['measured'], 2)} {t['unit']}",
             {True: "yes", False: "**no**", None: "—"}[t["met"]]] for t in document["targets"]]))
    if document.get("fanout"):
        parts += ["", fanout_table(document["fanout"])]
    for note in document.get("notes", []):
        parts += ["", f"Note: {note}"]
    return "\n".join(parts)


def _ms(value, timed_out=0):
    text = fmt(value)
    return f"{text} (+{timed_out} timed out)" if timed_out else text


def _losses(delivery):
    """Return "lost posts/reactions", with the streams concerned when any was lost."""
    text = f"{delivery['posts']['lost']}/{delivery['reactions']['lost']}"
    notes = [f"{delivery[key]} {what}" for key, what in (
        ("streams_losing", "streams"), ("streams_resynced", "resynced"),
        ("streams_ended_early", "ended early")) if delivery.get(key)]
    return text + (f" ({', '.join(notes)})" if notes else "")


def fanout_table(sizes):
    """Return the fan-out step's table: per follower count, cost per post and per reaction."""
    rows = []
    for r in sizes:
        p, q, d = r["posts"], r["reactions"], r["delivery"]
        rows.append([f"{r['followers']:,}", "yes" if r.get("large_author") else "no",
                     f"{r['online']:,}", f"{r['recently_active']:,}",
                     f"{p['requests']}", _ms(p["p50_ms"], p["timed_out"]), _ms(p["p99_ms"]),
                     fmt(p["redis_cpu_ms_per_event"], 1), fmt(p["redis_memory_kb_per_event"]),
                     f"{q['requests']}", _ms(q["p50_ms"], q["timed_out"]), _ms(q["p99_ms"]),
                     fmt(q["redis_cpu_ms_per_event"], 1), fmt(q["redis_memory_kb_per_event"]),
                     _ms(d["posts"]["p50_ms"]), _ms(d["posts"]["p99_ms"]),
                     _ms(d["reactions"]["p50_ms"]), _ms(d["reactions"]["p99_ms"]),
                     _losses(d)])
    headers = ["followers", "large author", "online", "active", "posts", "POST p50 ms", "POST p99 ms",
               "Redis CPU ms/post", "Redis KB/post", "reactions", "reaction p50 ms",
               "reaction p99 ms", "Redis CPU ms/reaction", "Redis KB/reaction",
               "post delivery p50 ms", "p99 ms", "reaction delivery p50 ms", "p99 ms",
               "lost posts/reactions"]
    lines = ["Fan-out: one author, N followers (delivery: from the request's send to the "
             "online followers' SSE streams):", "", markdown(headers, rows)]
    goals = fanout_goals(sizes)
    if goals:
        lines += ["", "Goals of the fan-out design (smallest to largest size):", "",
                  markdown(["goal", "measured", "met"], [
                      [g["target"], f"{fmt(g['measured'], 2)} {g['unit']}",
                       {True: "yes", False: "**no**", None: "—"}[g["met"]]] for g in goals])]
    return "\n".join(lines)


def fanout_goals(sizes):
    """Return the fan-out goals checked between the smallest and the largest size measured."""
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    span = f"{small['followers']:,} → {large['followers']:,}"
    goals = []
    for label, phase, key in (("POST p50", "posts", "p50_ms"),
                              ("reaction p50", "reactions", "p50_ms"),
                              ("Redis CPU per post", "posts", "redis_cpu_ms_per_event"),
                              ("Redis memory per post", "posts", "redis_memory_kb_per_event")):
        ratio = _ratio(large[phase][key], small[phase][key])
        if large[phase]["timed_out"] and not large[phase]["requests"]:
            ratio = None
        goals.append({"target": f"{label}, {span}: grows ≤ 2×", "measured": ratio, "unit": "×",
                      "met": None if ratio is None else ratio <= 2})
    for label, value, limit in (("POST p99", large["posts"]["p99_ms"], 100),
                                ("reaction p99", large["reactions"]["p99_ms"], 100),
                                ("online followers' post delivery p99",
                                 large["delivery"]["posts"]["p99_ms"], 250)):
        goals.append({"target": f"{label} at {large['followers']:,}: < {limit} ms",
                      "measured": value, "unit": "ms",
                      "met": None if value is None else value < limit})
    return goals

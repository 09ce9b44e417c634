"""One benchmark run and its reruns side by side: each ratio and goal with its range.

``python -m bench.ranges FIRST.json RERUN.json …`` prints, for every ratio to a peer and every
goal of :mod:`bench.report`, the figure of the first run and the range over all of them, as
the README's performance table shows them. A ratio holds on a noisy machine where an absolute
figure does not; the range says how far it moved between runs on the same code.
"""
import json
import sys
from pathlib import Path

from bench.report import PEERS, fmt, markdown

RATIOS = (("deliveries_per_s", "deliveries/s ×"), ("server_cpu_per_delivery", "CPU per delivery ×"),
          ("p99", "p99 ×"), ("idle_rss_per_stream", "idle RSS ×"))


def _cell(values, digits=2):
    """Return "first (low–high)" for the values of the runs; "—" when none was measured."""
    present = [v for v in values if v is not None]
    if values[0] is None:
        return "—"
    low, high = min(present), max(present)
    if len(present) == 1 or low == high:
        return fmt(values[0], digits)
    return f"{fmt(values[0], digits)} ({fmt(low, digits)}–{fmt(high, digits)})"


def ratio_tables(documents):
    """Return one markdown table per peer: per scenario, each ratio of the first run and its
    range over every run (above 1 is better for us)."""
    out = []
    for peer, label in PEERS.items():
        scenarios = [c["scenario"] for c in documents[0]["comparison"] if c["peer"] == peer]
        if not scenarios:
            continue
        rows = []
        for scenario in scenarios:
            found = [next((c for c in d["comparison"]
                           if c["peer"] == peer and c["scenario"] == scenario), {})
                     for d in documents]
            rows.append([scenario] + [_cell([c.get(key) for c in found]) for key, _ in RATIOS])
        out.append(f"Ours compared with {label} (higher is better for us):\n\n"
                   + markdown(["scenario"] + [h for _, h in RATIOS], rows))
    return out


def goals_table(documents):
    """Return the goals: the first run's figure, the range, and in how many runs each was met."""
    rows = []
    for goal in documents[0]["targets"]:
        found = [next((g for g in d["targets"] if g["target"] == goal["target"]), {})
                 for d in documents]
        met = sum(1 for g in found if g.get("met"))
        rows.append([goal["target"], f"{_cell([g.get('measured') for g in found])} {goal['unit']}",
                     f"{met} of {len(documents)}"])
    return markdown(["goal", "measured (range)", "met in"], rows)


def main(paths):
    """Print the tables for the runs in *paths*, the first being the one the figures are of."""
    documents = [json.loads(Path(p).read_text()) for p in paths]
    first = documents[0]
    print(f"{len(documents)} runs: the figure is the first run's ({first['date']}, {first['git']}), "
          f"the range in brackets is over all of them ({', '.join(d['date'] for d in documents)}).")
    for table in ratio_tables(documents):
        print("\n" + table)
    print("\n" + goals_table(documents))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

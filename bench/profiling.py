"""py-spy on every worker during a measurement, and a text summary of where the time went.

``python -m bench --profile DIR`` records each measured phase of each target (py-spy's raw
"collapsed stacks" format, ``<scenario>-<target>-<pid>.txt``) and prints the functions with the
most samples, by their own time and including what they call.
"""
import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


class Profiler:
    """py-spy record on *pids* until :meth:`stop`."""

    def __init__(self, directory, name, pids, rate=200):
        self.paths, self.processes = [], []
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for pid in pids:
            path = directory / f"{name}-{pid}.txt"
            self.paths.append(path)
            self.processes.append(subprocess.Popen(
                [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                 "--nonblocking", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self):
        """Stop recording (py-spy writes its file on SIGINT); return the summary text."""
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        return summarise([p for p in self.paths if p.exists()])


def summarise(paths, top=25):
    """Return the hottest functions of collapsed-stack files, by own and inclusive samples."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            count = int(count)
            total += count
            frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1]
                      + ")" if " (" in f else f for f in stack.split(";")]
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("including callees:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)

"""Looking at server processes from outside: which worker holds a connection, how big it is."""
import re
import subprocess


def worker_of_peers(port):
    """Return ``{client port: worker pid}`` for the established connections to *port*."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    owners = {}
    for line in out.splitlines():
        fields = line.split()
        pid = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and pid:
            owners[int(fields[3].rsplit(":", 1)[1])] = int(pid.group(1))
    return owners


def clients_by_worker(server, clients):
    """Return ``{worker pid: [clients]}`` for *clients* connected to *server* right now.

    The kernel decides which worker accepts each connection, and one worker may take them all:
    tests that need streams on a given worker look here.
    """
    owners = worker_of_peers(server.port)
    by_worker = {}
    for client in clients:
        pid = owners.get(client.local_port)
        if pid:
            by_worker.setdefault(pid, []).append(client)
    return by_worker


def rss_kib(pid):
    """Return the resident set size of *pid* in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

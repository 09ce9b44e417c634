"""A Redis Cluster of three primaries and three replicas on loopback ports, for tests."""
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def cluster_ports(count):
    """Return *count* free ports P below 45535 whose bus ports P + 10000 are free too.

    None of them is another's bus port: nothing is bound yet when they are chosen.
    """
    ports, taken = [], set()
    while len(ports) < count:
        port = random.randint(20000, 45000)
        pair = {port, port + 10000}
        if not pair & taken and all(_free(p) for p in pair):
            ports.append(port)
            taken |= pair
    return ports


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisCluster:
    """Six ``redis-server --cluster-enabled yes`` processes joined by ``redis-cli --cluster create``."""

    def __init__(self, directory, nodes=6):
        self.directory = Path(directory)
        self.ports = cluster_ports(nodes)
        self.processes = {}
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout=30):
        """Start the nodes, create the cluster, and wait until every node says it is ok."""
        binary = shutil.which("redis-server")
        for port in self.ports:
            self.processes[port] = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                 # Other shards keep serving while one fails over.
                 "--cluster-require-full-coverage", "no",
                 "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                 "--loglevel", "warning", "--logfile", f"node-{port}.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p).ping(), timeout)
        subprocess.run([shutil.which("redis-cli"), "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in self.ports], "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self.wait_ok(timeout)
        return self

    @staticmethod
    def _wait(check, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis cluster did not become ready")
            time.sleep(0.1)

    def alive_ports(self):
        """Return the ports of the nodes still running."""
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def wait_ok(self, timeout=30):
        """Wait until every running node reports ``cluster_state:ok``."""
        for port in self.alive_ports():
            self._wait(lambda p=port: redis.Redis(port=p).cluster("info")["cluster_state"] == "ok",
                       timeout)

    def primaries(self):
        """Return the ports of the running primaries."""
        return [p for p in self.alive_ports()
                if redis.Redis(port=p).info("replication")["role"] == "master"]

    def owner_port(self, key):
        """Return the port of the primary that owns *key*'s slot now."""
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=self.alive_ports()[0])
        with client:
            return client.get_node_from_key(key).port

    def kill(self, port):
        """Kill a node at once (SIGKILL), as a crash would."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(5)

    def stop(self):
        """Stop every node."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)

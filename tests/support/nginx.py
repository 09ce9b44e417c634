"""Run deploy/nginx.conf itself in front of test servers, with ports and paths substituted."""
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port

CONF = ROOT / "deploy" / "nginx.conf"


def self_signed_certificate(directory):
    """Create a self-signed certificate for 127.0.0.1; return (cert path, key path).

    Clients verify it (``REQUESTS_CA_BUNDLE``, ``--cacert``): it names the address, as Python's
    ssl needs, and not only the common name.
    """
    cert, key = Path(directory) / "feed.crt", Path(directory) / "feed.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class Nginx:
    """An nginx process running deploy/nginx.conf with the upstreams of *servers*.

    ``https_url`` is its address (certificate: ``cert``); ``http_url`` the plain one, which
    only redirects. *conf* replaces the text of deploy/nginx.conf (a variant to compare with).
    """

    def __init__(self, servers, directory, conf=None):
        self.directory = Path(directory)
        self.http_port, self.https_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        self.cert, key = self_signed_certificate(self.directory)
        text = CONF.read_text() if conf is None else conf
        upstreams = "".join(f"        server 127.0.0.1:{s.port} max_fails=1 fail_timeout=2s;\n"
                            for s in servers)
        text = text.replace("        server 127.0.0.1:8001 max_fails=1 fail_timeout=2s;\n"
                            "        server 127.0.0.1:8002 max_fails=1 fail_timeout=2s;\n", upstreams)
        for old, new in {"listen 8080;": f"listen 127.0.0.1:{self.http_port};",
                         "listen 8443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
                         "https://$host:8443$": f"https://$host:{self.https_port}$",
                         "/etc/ssl/certs/feed.crt": str(self.cert),
                         "/etc/ssl/private/feed.key": str(key),
                         "/run/nginx-feed.pid": str(self.directory / "nginx.pid"),
                         "/var/log/nginx/": str(self.directory) + "/",
                         "worker_processes auto;": "worker_processes 2;"}.items():
            assert old in text, old
            text = text.replace(old, new)
        # Temporary files of a non-root prefix.
        text = text.replace("\nhttp {", "\nhttp {\n    client_body_temp_path tmp/body;\n"
                            "    proxy_temp_path tmp/proxy;\n", 1)
        (self.directory / "tmp").mkdir(exist_ok=True)
        self.conf = self.directory / "nginx.conf"
        self.conf.write_text(text)
        self.process = None

    def start(self):
        """Start nginx in the foreground of a child process and wait for its port."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([binary, "-p", str(self.directory), "-c", str(self.conf),
                                         "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                        stderr=open(self.directory / "nginx.out", "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "nginx.out").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    @contextlib.contextmanager
    def trusted(self):
        """Within this context, requests and websocket-client trust the certificate."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(self.cert))
            patch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(self.cert))
            yield self

    def stop(self):
        """Stop nginx."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

"""A static file server for download tests (127.0.0.1 unless told to bind elsewhere, e.g. a
libvirt network's gateway): serves a directory, records request paths, and can answer chosen
paths with 503 a given number of times (to exercise retries)."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        srv.requests.append(self.path)
        if srv.failures[self.path] > 0:
            srv.failures[self.path] -= 1
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class FileServer:
    def __init__(self, root: Path, host: str = "127.0.0.1"):
        self.root = root
        self.httpd = ThreadingHTTPServer((host, 0), functools.partial(_Handler, directory=str(root)))
        self.httpd.requests = []
        self.httpd.failures = Counter()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def fail(self, path: str, times: int) -> None:
        self.httpd.failures[path] = times

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""A relay between packer and the guest's forwarded SSH port that dials afresh until sshd answers.

packer 1.6 opens one TCP connection to QEMU's user-mode forward as soon as the VM runs and waits
on it. slirp answers the host side at once and sends the guest a SYN that nothing answers until
the guest's network is up, then retries with exponential backoff: an sshd listening 20 s after
the VM started was reached at 31 s (measured here under TCG). packer 1.6 has no option for it, so
packer connects here instead (`skip_nat_mapping`, `ssh_port`); each attempt upstream is a new
connection given up after `ATTEMPT` seconds without sshd's banner, and packer's session starts
within about a second of sshd listening. Only SSH bytes pass; nothing is read from them but the
banner's presence.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator

ATTEMPT = 1.5  # seconds an upstream attempt waits for the banner
PAUSE = 0.5  # seconds between attempts
BANNER_MAX = 255  # RFC 4253 §4.2: the identification line is at most 255 bytes


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for QEMU's hostfwd (it binds it moments later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SshGate:
    def __init__(self, upstream: tuple[str, int], deadline: float):
        self.upstream, self.deadline = upstream, deadline
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._serve, name="sshgate", daemon=True)]
        self._threads[0].start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            t = threading.Thread(target=self._handle, args=(client,), name="sshgate-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _dial(self) -> tuple[socket.socket, bytes] | None:
        """A fresh upstream connection and the first bytes sshd sent, or None once the deadline passed."""
        end = time.monotonic() + self.deadline
        while not self._closed.is_set() and time.monotonic() < end:
            up = None
            try:
                up = socket.create_connection(self.upstream, timeout=ATTEMPT)
                first = up.recv(BANNER_MAX)
                if first.startswith(b"SSH-"):
                    up.settimeout(None)
                    return up, first
            except OSError:  # refused (QEMU not listening yet), timed out, reset by the guest
                pass
            if up is not None:
                up.close()
            self._closed.wait(PAUSE)
        return None

    def _handle(self, client: socket.socket) -> None:
        with contextlib.closing(client):
            dialled = self._dial()
            if dialled is None:
                return
            up, first = dialled
            with contextlib.closing(up):
                client.sendall(first)
                _relay(client, up, self._closed)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() a close alone would leave blocked
        self._listener.close()
        for t in self._threads:
            t.join(timeout=5)


def _relay(a: socket.socket, b: socket.socket, closed: threading.Event) -> None:
    """Copy both ways until both sides have finished sending (half-closes passed on)."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as sel:
        for s in (a, b):
            sel.register(s, selectors.EVENT_READ)
        while sel.get_map() and not closed.is_set():
            for key, _ in sel.select(timeout=0.5):
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(65536)
                    if data:
                        peer[src].sendall(data)
                        continue
                    peer[src].shutdown(socket.SHUT_WR)
                except OSError:  # reset: the session is over both ways
                    return
                sel.unregister(src)


@contextlib.contextmanager
def gate(upstream: tuple[str, int], deadline: float) -> Iterator[SshGate]:
    g = SshGate(upstream, deadline)
    try:
        yield g
    finally:
        g.close()

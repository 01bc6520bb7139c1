"""The SSH gate in front of packer: upstream attempts that stall (slirp with a guest whose
network is not up) or are refused are retried on fresh connections; once sshd's banner
arrives, bytes pass both ways unchanged, half-closes included."""

from __future__ import annotations

import socket
import threading

import pytest

from builder.image import sshgate


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Attempts of a fraction of a second: the same logic, tests that take one."""
    monkeypatch.setattr(sshgate, "ATTEMPT", 0.25)
    monkeypatch.setattr(sshgate, "PAUSE", 0.05)


def slirp_like_upstream(stalls: int) -> tuple[socket.socket, list[str]]:
    """Accepts every connection; the first `stalls` never get a byte (the SYN the guest does not
    answer yet), then an sshd that sends its banner and echoes until EOF."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            if len(seen) < stalls:
                seen.append("stalled")
                threading.Timer(5, c.close).start()
                continue
            seen.append("answered")
            with c:
                c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                while data := c.recv(4096):
                    c.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv, seen


def test_stalled_attempts_are_retried_afresh_then_bytes_pass_both_ways():
    srv, seen = slirp_like_upstream(stalls=2)
    with srv, sshgate.gate(srv.getsockname()[:2], deadline=20) as g:
        c = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        assert c.recv(64).startswith(b"SSH-2.0-OpenSSH")
        c.sendall(b"kex")
        c.shutdown(socket.SHUT_WR)  # the half-close reaches sshd, its answer still comes back
        got = b""
        while data := c.recv(64):
            got += data
        c.close()
    assert got == b"KEX"
    assert seen == ["stalled", "stalled", "answered"]


def test_refused_until_qemu_listens():
    port = sshgate.free_port()
    with sshgate.gate(("127.0.0.1", port), deadline=20) as g:
        c = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        late = socket.create_server(("127.0.0.1", port))  # QEMU binds its forward after packer dialled
        with late:
            conn, _ = late.accept()
            with conn:
                conn.sendall(b"SSH-2.0-x\r\n")
                assert c.recv(64) == b"SSH-2.0-x\r\n"
        c.close()


def test_no_banner_before_the_deadline_closes_packers_connection():
    srv, _ = slirp_like_upstream(stalls=1000)
    with srv, sshgate.gate(srv.getsockname()[:2], deadline=1) as g:
        c = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        assert c.recv(64) == b""  # packer sees EOF and reports its own SSH failure
        c.close()

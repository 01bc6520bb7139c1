"""The test channel into a guest: qemu-guest-agent over virtio-serial.

The getty on ttyS0 hangs up scripts that talk over the serial console (docs/design.md §6), so tests use
the guest agent's own virtio-serial port instead: `guest-sync` answering is the readiness marker,
`guest-exec` runs checks and returns exit code and output, `guest-shutdown` powers off.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.errors import BuildFailed


class GuestError(BuildFailed):
    pass


@dataclass
class ExecResult:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _decoded(status: dict, key: str) -> str:
    """A guest-exec-status output field: base64 in the reply, text for us."""
    return base64.b64decode(status.get(key, "")).decode("utf-8", "replace")


class GuestAgent:
    def __init__(self, socket_path: Path):
        self.path = socket_path
        self.sock: socket.socket | None = None
        self.buf = b""
        # one request/answer at a time on the one channel: checks run execs from many threads
        self.lock = threading.Lock()

    def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None

    def _connect(self, timeout: float = 10) -> None:
        """Connect and sync: answers to requests of an earlier, abandoned connection are skipped."""
        if self.sock is not None:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(self.path))
            self.sock, self.buf = s, b""
            token = random.randrange(1, 2**31)
            # the 0xFF byte makes the agent drop any half-read request
            s.sendall(b"\xff")
            self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
            deadline = time.monotonic() + timeout
            while self._recv(deadline).get("return") != token:
                pass
        except BaseException:
            s.close()
            self.sock = None
            raise

    def _channel(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionError("guest agent not connected")
        return self.sock

    def _send(self, msg: dict) -> None:
        self._channel().sendall(json.dumps(msg).encode() + b"\n")

    def _recv(self, deadline: float) -> dict:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("guest agent did not answer")
            sock = self._channel()
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("guest agent socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        # a 0xFF sentinel precedes the answer to guest-sync-delimited
        line = line.lstrip(b"\xff").strip()
        return json.loads(line) if line else {}

    def wait_ready(self, timeout: float, alive=lambda: True) -> float:
        """Sync with the agent (it appears once the guest's udev sees the port); return seconds."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise GuestError("the VM exited before its guest agent answered")
            try:
                with self.lock:
                    self._connect(timeout=3)
                return time.monotonic() - t0
            except (OSError, TimeoutError, ConnectionError, ValueError):
                time.sleep(0.5)
        raise GuestError(f"guest agent not ready after {timeout:.0f} s")

    def call(self, command: str, arguments: dict | None = None, timeout: float = 30) -> Any:
        """The command's `return` value: whatever JSON the agent answers."""
        msg: dict[str, object] = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        with self.lock:
            try:
                self._connect()
                self._send(msg)
                reply = self._recv(time.monotonic() + timeout)
            except (OSError, TimeoutError, ConnectionError, ValueError) as e:
                self.close()  # the next call reconnects and resyncs past a late answer
                raise GuestError(f"{command}: {type(e).__name__}: {e}") from None
        if "error" in reply:
            raise GuestError(f"{command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def exec(self, argv: list[str], timeout: float = 60, input: bytes | None = None) -> ExecResult:
        args: dict = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        pid = self.call("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            st = self.call("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                return ExecResult(st.get("exitcode", -1), _decoded(st, "out-data"), _decoded(st, "err-data"))
            if time.monotonic() > deadline:
                raise GuestError(f"{' '.join(argv)} did not finish in {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def poweroff(self) -> None:
        # Not guest-shutdown: the agent runs `shutdown -P +0`, which needs logind over D-Bus and
        # fails on images without dbus. systemctl talks to PID 1 directly.
        # no waiting for its exit status: the agent may already be gone with the guest
        self.call("guest-exec", {"path": "systemctl", "arg": ["poweroff", "--no-block"]})
        with self.lock:
            self.close()

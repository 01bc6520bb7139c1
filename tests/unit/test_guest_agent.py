"""The guest-agent client against a stand-in that speaks QGA's wire protocol (JSON lines over a
unix socket, 0xFF-delimited sync, guest-exec running real processes, base64 output)."""

import base64
import json
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from builder.guest import GuestAgent, GuestError


class FakeQga(threading.Thread):
    def __init__(self, path, stale: bytes = b""):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(4)
        self.procs: dict[int, subprocess.Popen] = {}
        self.stale = stale  # bytes left in the channel by an earlier session

    def run(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rb")
        conn.sendall(self.stale)
        while line := f.readline():
            line = line.lstrip(b"\xff").strip()
            if not line:
                continue
            req = json.loads(line)
            cmd, args = req["execute"], req.get("arguments", {})
            if cmd == "guest-sync-delimited":
                conn.sendall(b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n")
                continue
            if cmd == "guest-exec":
                p = subprocess.Popen([args["path"], *args.get("arg", [])], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                self.procs[p.pid] = p
                out = {"return": {"pid": p.pid}}
            elif cmd == "guest-exec-status":
                p = self.procs.get(args["pid"])
                if p is None:
                    out = {"error": {"class": "GenericError", "desc": "Invalid parameter 'pid'"}}
                elif p.poll() is None:
                    out = {"return": {"exited": False}}
                else:
                    o, e = p.communicate()
                    out = {"return": {"exited": True, "exitcode": p.returncode,
                                      "out-data": base64.b64encode(o).decode(),
                                      "err-data": base64.b64encode(e).decode()}}
            else:
                out = {"error": {"class": "CommandNotFound", "desc": f"The command {cmd} has not been found"}}
            conn.sendall(json.dumps(out).encode() + b"\n")


@pytest.fixture
def agent(tmp_path):
    path = tmp_path / "qga.sock"
    FakeQga(path, stale=b'{"return": {"pid": 999}}\n').start()
    a = GuestAgent(path)
    yield a
    a.close()


def test_ready_skips_stale_answers_and_execs(agent):
    assert agent.wait_ready(5) < 5
    r = agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_parallel_execs_do_not_cross_answers(agent):
    agent.wait_ready(5)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: agent.exec(["sh", "-c", f"sleep 0.0{i % 5}; echo {i}"]), range(24)))
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(24)]


def test_errors_and_timeouts(agent, tmp_path):
    agent.wait_ready(5)
    with pytest.raises(GuestError, match="has not been found"):
        agent.call("guest-nope")
    with pytest.raises(GuestError, match="did not finish in 1 s"):
        agent.exec(["sleep", "5"], timeout=1)
    assert agent.exec(["true"]).rc == 0  # the channel still works afterwards
    with pytest.raises(GuestError, match="not ready"):
        GuestAgent(tmp_path / "absent.sock").wait_ready(1)

"""The one way builder starts a process, so that every child is accounted for.

- `spawn` starts a child that belongs to a run (QEMU, radvd, tgtd, a tool run inside a stage):
  it is journalled *before* it exists. The journal entry carries a fresh tag, the child gets
  the tag in its environment (`BUILDER_SPAWN`, inherited by its own children), and its pid and
  start time are added once it exists. The reaper finds it by pid and start time or, when
  builder died between the two writes, by the tag in /proc/PID/environ (`tagged`).
- `run`/`output` run a tool to completion: stream its output line by line, honour a timeout,
  kill the whole process group (packer and mmdebstrap spawn children) and account the time
  spent inside each tool so the toolkit's own overhead can be measured (bench/). Given a run
  (`run_ctx`), the tool is spawned through the journal. Without one it is not journalled: that
  is for short tool calls that create no host object (ip, sysctl, git, ssh, VBoxManage queries,
  the reaper's own undo commands): a SIGKILLed builder leaves nothing of them behind once they
  exit by themselves, and a journal write per call would cost more than the call (a 2000-node
  fabric runs thousands of checks).
- `detach` starts a builder that outlives this one and keeps its own journal.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import BuildFailed

SPAWN_ENV = "BUILDER_SPAWN"  # the journal tag of a spawned process, in its environment

# (tool, start, end) of every external tool run in this process, for the overhead benchmark;
# spans may overlap (two conversions run side by side), so measure their union.
TOOL_SPANS: list[tuple[str, float, float]] = []


def tool_seconds(since: float = 0.0) -> float:
    """Wall time covered by at least one external tool since `since` (time.monotonic())."""
    total, end = 0.0, since
    for a, b in sorted((max(a, since), b) for _, a, b in TOOL_SPANS if b > since):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def proc_start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): with the pid, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 22 (starttime), counted after the parenthesised comm which may contain spaces
    return stat.rsplit(")", 1)[1].split()[19]


def _zombie(pid: int) -> bool:
    # a killed child of this very process stays a zombie until waited for: it is gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def alive(pid: int, start: str | None) -> bool:
    """Whether the process `pid` that started at `start` (None: any) still runs."""
    now = proc_start_time(pid)
    return now is not None and (start is None or now == start) and not _zombie(pid)


def tagged(tag: str) -> list[int]:
    """The processes spawned with journal tag `tag`, and their children (they inherit it)."""
    needle = f"{SPAWN_ENV}={tag}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if needle in env.split(b"\0"):
            pids.append(int(d.name))
    return pids


class Journal(Protocol):
    """What `spawn` needs of a run's journal (core.runs.Run)."""

    @property
    def tag(self) -> str: ...

    def record(self, kind: str, **rec) -> dict: ...

    def amend(self, rec: dict, **fields) -> None: ...

    def release(self, rec: dict) -> None: ...


def spawn(journal: Journal, argv: Sequence[str | os.PathLike], *, env: dict[str, str] | None = None,
          signals: tuple[str, ...] | None = None, **popen) -> tuple[subprocess.Popen, dict]:
    """Start argv in its own process group, journalled before it exists; returns the process
    and its journal record (release it once the process is done with)."""
    tag = f"{journal.tag}-{secrets.token_hex(4)}"
    extra = {"signals": list(signals)} if signals else {}
    rec = journal.record("process", tag=tag, group=True, **extra)
    try:
        p = subprocess.Popen([str(a) for a in argv], env={**(os.environ if env is None else env), SPAWN_ENV: tag},
                             start_new_session=True, **popen)
    except BaseException:
        journal.release(rec)
        raise
    keep_nice(p.pid)
    journal.amend(rec, pid=p.pid, start=proc_start_time(p.pid))
    return p, rec


def keep_nice(pid: int) -> None:
    """Give a child in a session of its own the calling thread's CPU priority. A niced thread's
    children inherit its nice value, but with the kernel's autogroups (sched_autogroup_enabled)
    every session is a scheduling group of its own that competes at equal weight whatever its
    members' nice values: the group itself must be niced."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)  # on Linux, the calling thread's
    if nice > 0:
        with contextlib.suppress(OSError):  # no autogroups in this kernel, or the child is gone
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def detach(argv: Sequence[str]) -> subprocess.Popen:
    """Start a builder command that outlives this process (`fabric up --detach`): it is a run of
    its own with its own journal, so it is not journalled here. Its stderr is piped, to say why
    it stopped if it stops before it is up."""
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr merged in order, or stdout alone with merge_stderr=False
    seconds: float
    stderr: str = ""  # with merge_stderr=False


class ToolFailed(BuildFailed):
    def __init__(self, result: Result, what: str | None = None):
        self.result = result
        tail = "\n".join(result.output.strip().splitlines()[-15:])
        name = what or Path(result.argv[0]).name
        super().__init__(f"{name} failed (exit {result.returncode}):\n{tail}")


class ToolTimeout(BuildFailed):
    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output  # what the tool printed before it was killed


def _kill_group(p: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


class _Lines:
    """Bytes from a pipe, split into decoded lines as they arrive."""

    def __init__(self, on_line: Callable[[str], None] | None = None):
        self.lines: list[str] = []
        self.buf, self.on_line = b"", on_line

    def feed(self, chunk: bytes) -> None:
        *complete, self.buf = (self.buf + chunk).split(b"\n")
        for raw in complete:
            self._add(raw.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> str:
        if self.buf:
            self._add(self.buf.decode("utf-8", "replace"))
            self.buf = b""
        return "\n".join(self.lines)

    def _add(self, line: str) -> None:
        self.lines.append(line)
        if self.on_line:
            self.on_line(line)


def run(
    argv: Sequence[str | os.PathLike],
    *,
    run_ctx: Journal | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    stdin_data: bytes | None = None,
    what: str | None = None,
    merge_stderr: bool = True,
) -> Result:
    """Run argv in its own process group; stream its output lines to on_line (stdout and stderr
    merged, or stdout alone with merge_stderr=False, stderr then in Result.stderr)."""
    args = [str(a) for a in argv]
    t0 = time.monotonic()
    pipes: dict[str, Any] = {"stdin": subprocess.DEVNULL if stdin_data is None else subprocess.PIPE,
                             "stdout": subprocess.PIPE, "cwd": cwd,
                             "stderr": subprocess.STDOUT if merge_stderr else subprocess.PIPE}
    if run_ctx is not None:
        p, rec = spawn(run_ctx, args, env=env, **pipes)
    else:
        p, rec = subprocess.Popen(args, env=env, start_new_session=True, **pipes), None
        keep_nice(p.pid)
    out, err = _Lines(on_line), _Lines()
    sel = selectors.DefaultSelector()
    streams: list[IO[bytes]] = [s for s in (p.stdin, p.stdout, p.stderr) if s is not None]
    try:
        assert p.stdout is not None  # stdout=PIPE
        sel.register(p.stdout, selectors.EVENT_READ, out)
        if p.stderr is not None:
            sel.register(p.stderr, selectors.EVENT_READ, err)
        pending = memoryview(stdin_data or b"")
        if p.stdin is not None:
            # written as the child reads, while its output is drained: a large script on stdin
            # (ip -batch) and a flood of messages back must not block each other
            os.set_blocking(p.stdin.fileno(), False)
            if pending:
                sel.register(p.stdin, selectors.EVENT_WRITE)
            else:
                p.stdin.close()
        deadline = None if timeout is None else t0 + timeout
        while sel.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                _kill_group(p)
                raise ToolTimeout(f"{what or Path(args[0]).name} timed out after {timeout:.0f} s", out.close())
            for key, _ in sel.select(timeout=left):
                if key.fileobj is p.stdin:
                    try:
                        pending = pending[os.write(key.fd, pending[:65536]):]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the child stopped reading: its exit status tells
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(p.stdin)
                        p.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.feed(chunk)
                else:
                    sel.unregister(key.fileobj)
        p.wait()
    except BaseException:
        _kill_group(p)
        raise
    finally:
        sel.close()
        for s in streams:
            s.close()
        seconds = time.monotonic() - t0
        TOOL_SPANS.append((Path(args[0]).name, t0, t0 + seconds))
        if rec is not None and run_ctx is not None:
            run_ctx.release(rec)  # already exited; release only forgets it
    res = Result(args, p.returncode, out.close(), seconds, err.close())
    if check and p.returncode != 0:
        raise ToolFailed(res, what)
    return res


def output(argv: Sequence[str | os.PathLike], **kw) -> str:
    return run(argv, **kw).output

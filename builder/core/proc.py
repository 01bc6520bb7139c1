"""Run external tools: stream their output line by line, honour a timeout, kill the whole
process group (packer and mmdebstrap spawn children), and account the time spent inside
each tool so the toolkit's own overhead can be measured (bench/).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildFailed
from .runs import Run, proc_start_time

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


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str
    seconds: float


class ToolFailed(BuildFailed):
    def __init__(self, result: Result, what: str | None = None):
        self.result = result
        tail = "\n".join(result.output.strip().splitlines()[-15:])
        name = what or Path(result.argv[0]).name
        super().__init__(f"{name} failed (exit {result.returncode}):\n{tail}")


class ToolTimeout(BuildFailed):
    pass


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


def run(
    argv: Sequence[str | os.PathLike],
    *,
    run_ctx: Run | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    stdin_data: bytes | None = None,
    what: str | None = None,
) -> Result:
    """Run argv in its own process group; stream merged stdout/stderr lines to on_line."""
    args = [str(a) for a in argv]
    t0 = time.monotonic()
    p = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    rec = None
    if run_ctx is not None:
        rec = run_ctx.record("process", pid=p.pid, start=proc_start_time(p.pid), group=True)
    stdout = p.stdout
    assert stdout is not None  # stdout=PIPE
    if stdin_data is not None:
        assert p.stdin is not None  # stdin=PIPE
        p.stdin.write(stdin_data)
        p.stdin.close()
    lines: list[str] = []
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(stdout, selectors.EVENT_READ)
    deadline = None if timeout is None else t0 + timeout
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                _kill_group(p)
                raise ToolTimeout(f"{what or Path(args[0]).name} timed out after {timeout:.0f} s")
            if not sel.select(timeout=left):
                continue
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                lines.append(line)
                if on_line:
                    on_line(line)
        if buf:
            lines.append(buf.decode("utf-8", "replace"))
            if on_line:
                on_line(lines[-1])
        p.wait()
    except BaseException:
        _kill_group(p)
        raise
    finally:
        sel.close()
        stdout.close()
        seconds = time.monotonic() - t0
        TOOL_SPANS.append((Path(args[0]).name, t0, t0 + seconds))
        if rec is not None and run_ctx is not None:
            run_ctx.release(rec)  # already exited; release only forgets it
    res = Result(args, p.returncode, "\n".join(lines), seconds)
    if check and p.returncode != 0:
        raise ToolFailed(res, what)
    return res


def output(argv: Sequence[str | os.PathLike], **kw) -> str:
    return run(argv, **kw).output

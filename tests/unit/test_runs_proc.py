"""The run journal and the tool runner: teardown, reaping of dead runs only, timeouts."""

import os
import subprocess
import sys
import time

import pytest

from builder.core import proc
from builder.core.runs import Run, live_runs, reap


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def test_teardown_undoes_journal_in_reverse(tmp_path):
    f = tmp_path / "made"
    with Run(root=tmp_path / "runs") as run:
        assert len(run.tag) == 8 and run.tag.startswith("bx")
        run.record("path", path=str(f))
        f.write_text("x")
        p = _sleeper()
        run.record("process", pid=p.pid, start=None, group=True)
    p.wait(timeout=10)
    assert not f.exists() and not (tmp_path / "runs" / run.id).exists()


def test_names_fit_ifnamsiz(tmp_path):
    run = Run(root=tmp_path)
    assert run.name("u300") == f"bx{run.id}u300"
    with pytest.raises(ValueError, match="15 characters"):
        run.name("toolongsuffix")


def test_reap_undoes_dead_runs_and_spares_live_ones(tmp_path):
    root = tmp_path / "runs"
    victim = tmp_path / "victim"
    # A run owned by a process that dies without teardown (as after SIGKILL).
    code = f"""
import os, sys
sys.path.insert(0, {str(os.getcwd())!r})
from builder.core.runs import Run
r = Run(root=__import__('pathlib').Path({str(root)!r})).start()
r.record('path', path={str(victim)!r})
open({str(victim)!r}, 'w').write('x')
print(r.id)
os._exit(0)
"""
    dead_id = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    with Run(root=root) as live:
        # entering a run reaps first: the dead run's file is gone, the live run stays
        assert not victim.exists() and not (root / dead_id).exists()
        assert live_runs(root) == [live.id]
        assert reap(root) == []
        assert (root / live.id / "owner.json").exists()


def test_tool_runner_streams_and_times_out(tmp_path):
    lines = []
    res = proc.run(["sh", "-c", "echo one; echo two >&2; printf three"], on_line=lines.append)
    assert lines == ["one", "two", "three"] and res.returncode == 0
    with pytest.raises(proc.ToolFailed, match=r"exit 3"):
        proc.run(["sh", "-c", "echo oops; exit 3"])
    # the whole process group dies on timeout, grandchildren included
    marker = tmp_path / "grandchild.pid"
    t0 = time.monotonic()
    with pytest.raises(proc.ToolTimeout, match="timed out"):
        proc.run(["sh", "-c", f"sleep 300 & echo $! > {marker}; wait"], timeout=1)
    assert time.monotonic() - t0 < 15
    pid = int(marker.read_text())
    for _ in range(50):
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("grandchild survived the timeout")


def test_tool_seconds_is_a_union_of_spans(monkeypatch):
    monkeypatch.setattr(proc, "TOOL_SPANS", [("a", 10.0, 20.0), ("b", 15.0, 25.0), ("c", 30.0, 31.0)])
    assert proc.tool_seconds(since=0) == 16.0
    assert proc.tool_seconds(since=18) == 8.0

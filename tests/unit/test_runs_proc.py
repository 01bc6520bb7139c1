"""The run journal and the tool runner: teardown, reaping of dead runs only, timeouts."""

import json
import os
import subprocess
import sys
import time

import pytest

from builder.core import proc
from builder.core.runs import Run, live_runs, reap
from tests.fakes.dying_builder import builder_that_dies


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
    (dead_id,) = builder_that_dies(root, f"""
r.record('path', path={str(victim)!r})
open({str(victim)!r}, 'w').write('x')
print(r.id, flush=True)
""")
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


def test_spawn_journals_the_process_before_it_exists(tmp_path):
    with Run(root=tmp_path / "runs") as run:
        journal = run.dir / "journal.jsonl"
        res = proc.run(["sh", "-c", f'cat {journal}; echo "tag=$BUILDER_SPAWN"'], run_ctx=run)
        first, *_, last = res.output.splitlines()
        seen = json.loads(first)  # what the journal held when the child ran: its tag, no pid yet
        assert seen["kind"] == "process" and "pid" not in seen and last == f"tag={seen['tag']}"
        assert seen["tag"].startswith(run.tag + "-")
        assert journal.read_text() == ""  # it exited: released


def test_reaper_kills_a_process_whose_pid_was_never_journalled(tmp_path):
    """The builder dies between journalling a process and writing its pid: the tag finds it."""
    root = tmp_path / "runs"
    (dead_id,) = builder_that_dies(root, """
print(r.id, flush=True)
r.amend = lambda rec, **fields: os._exit(0)  # killed right after the child started
proc.spawn(r, ["sleep", "300"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
""")
    (rec,) = [json.loads(line) for line in (root / dead_id / "journal.jsonl").read_text().splitlines()]
    assert "pid" not in rec
    (pid,) = proc.tagged(rec["tag"])
    assert proc.alive(pid, None)
    assert reap(root) == [dead_id]
    assert not proc.alive(pid, None) and proc.tagged(rec["tag"]) == []


def test_amended_record_supersedes_its_first_line(tmp_path):
    root = tmp_path / "runs"
    dead_id, pid = builder_that_dies(root, """
p, rec = proc.spawn(r, ["sleep", "300"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
print(r.id, p.pid, flush=True)
""")
    lines = [json.loads(line) for line in (root / dead_id / "journal.jsonl").read_text().splitlines()]
    assert [("pid" in r) for r in lines] == [False, True] and lines[0]["tag"] == lines[1]["tag"]
    assert reap(root) == [dead_id]
    assert not proc.alive(int(pid), None)


def test_tool_runner_feeds_stdin_while_draining_output_and_splits_stderr():
    # the child floods stderr before it reads its stdin: writing all of stdin first would deadlock
    flood = "import sys; sys.stderr.write('e' * (1 << 20)); sys.stderr.flush(); print(len(sys.stdin.read()))"
    for merge in (True, False):
        res = proc.run([sys.executable, "-c", flood], stdin_data=b"x" * (1 << 20), timeout=60, merge_stderr=merge)
        assert res.output.endswith(str(1 << 20))
        assert len(res.stderr) == (0 if merge else 1 << 20)
    res = proc.run(["sh", "-c", "echo out; echo err >&2"], merge_stderr=False)
    assert (res.output, res.stderr) == ("out", "err")
    with pytest.raises(proc.ToolTimeout) as e:
        proc.run(["sh", "-c", "echo partial; sleep 300"], timeout=1)
    assert e.value.output == "partial"

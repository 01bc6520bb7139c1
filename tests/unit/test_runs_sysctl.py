"""A sysctl raised by overlapping runs (two large fabrics raise netdev_max_backlog): whichever
goes down first, the value stays raised while one still runs, and the last one down, or the
reaper after a SIGKILL, puts back the value from before the first."""

from __future__ import annotations

from builder.core.runs import Run, hold_sysctl
from tests.fakes.dying_builder import builder_that_dies

KEY = "net.core.netdev_max_backlog"


def _proc_sys(tmp_path):
    """A stand-in for /proc/sys holding the one file, so the test runs unprivileged."""
    root = tmp_path / "proc-sys"
    (root / "net/core").mkdir(parents=True)
    (root / "net/core/netdev_max_backlog").write_text("1000\n")
    return root, root / "net/core/netdev_max_backlog"


def test_the_last_run_down_restores_the_original(tmp_path):
    proc_sys, value = _proc_sys(tmp_path)
    a, b = Run(root=tmp_path / "runs").start(), Run(root=tmp_path / "runs").start()
    hold_sysctl(a, KEY, 3024, proc_sys=proc_sys)
    hold_sysctl(b, KEY, 5024, proc_sys=proc_sys)
    assert value.read_text() == "5024"
    a.teardown()  # the first fabric up goes down first: b still needs its backlog
    assert value.read_text() == "5024"
    b.teardown()
    assert value.read_text() == "1000"
    assert list((tmp_path / "runs").iterdir()) == []  # nothing left under the run root


def test_a_smaller_need_still_holds_the_value(tmp_path):
    proc_sys, value = _proc_sys(tmp_path)
    a, b = Run(root=tmp_path / "runs").start(), Run(root=tmp_path / "runs").start()
    hold_sysctl(a, KEY, 5024, proc_sys=proc_sys)
    hold_sysctl(b, KEY, 2024, proc_sys=proc_sys)  # already high enough: nothing written, but held
    assert value.read_text() == "5024"
    b.teardown()
    assert value.read_text() == "5024"
    a.teardown()
    assert value.read_text() == "1000"


def test_the_reaper_lets_go_for_a_killed_run(tmp_path):
    proc_sys, value = _proc_sys(tmp_path)
    root = tmp_path / "runs"
    live = Run(root=root).start()
    hold_sysctl(live, KEY, 3024, proc_sys=proc_sys)
    builder_that_dies(root, f"""
from builder.core.runs import hold_sysctl
hold_sysctl(r, {KEY!r}, 4024, proc_sys=Path({str(proc_sys)!r}))
""")
    assert value.read_text() == "4024"
    with Run(root=root):  # starting a run reaps the dead one: the live one still holds
        assert value.read_text() == "4024"
    live.teardown()
    assert value.read_text() == "1000"

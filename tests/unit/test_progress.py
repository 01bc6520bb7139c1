"""The progress reporter: stages side by side each report their own lines and durations."""

from __future__ import annotations

import threading

from builder import progress
from builder.progress import Reporter


def test_side_by_side_stages_report_their_own_lines(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    rep = Reporter()
    in_box, boot_done = threading.Event(), threading.Event()

    def worker():
        with rep.stage("box", "box layer"):
            in_box.set()
            rep.update("qemu-img convert")
            boot_done.wait(10)

    t = threading.Thread(target=worker)
    with rep.stage("boot", "boot test"):
        t.start()
        assert in_box.wait(10)
        rep.update("waiting for the guest agent")
    boot_done.set()
    t.join(10)
    out = capsys.readouterr().err
    assert "box: qemu-img convert" in out and "boot: waiting for the guest agent" in out
    assert set(rep.durations) == {"boot", "box"}


def test_a_helper_thread_of_the_only_stage_reports_for_it(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    rep = Reporter()
    with rep.stage("lab", "lab"):
        t = threading.Thread(target=rep.update, args=("node 2 booted",))
        t.start()
        t.join(10)
    assert "lab: node 2 booted" in capsys.readouterr().err

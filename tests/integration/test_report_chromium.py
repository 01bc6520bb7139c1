"""report.html in a real browser: Debian's headless Chromium renders the failed-build report
(the fabric picture laid out by Graphviz when it is installed), its screenshot is not blank,
the DOM's text holds every stage and case name, and the console stays silent (no script
error, no fetch the page's CSP had to block). A control page proves the console check bites."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from lxml import html as lxml_html
from PIL import Image, ImageStat

from builder.fabric.render.dot import fabric_dot, svg
from builder.fabric.validate import load
from builder.publish.manifest import Manifest
from builder.report import failed_checks, render_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/report"
WIDTH, HEIGHT = 1280, 2400
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-breakpad",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}"]  # fmt: skip


def chromium(page: Path, tmp: Path) -> tuple[Image.Image, str, str]:
    """(screenshot, DOM, browser log) of one headless run; its whole process group goes after."""
    shot = tmp / "shot.png"
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--screenshot={shot}", "--dump-dom", page.as_uri()]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        dom, log = p.communicate(timeout=120)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    assert p.returncode == 0, log
    return Image.open(shot).convert("RGB"), dom, log


def console(log: str) -> list[str]:
    """Console messages Chromium logged (`...:CONSOLE:N] "message", source: ...`)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def report(tmp: Path) -> tuple[Path, Manifest]:
    m = Manifest.model_validate_json((FIXTURES / "failed.json").read_text())
    previous = Manifest.model_validate_json((FIXTURES / "previous.json").read_text())
    picture = None
    if shutil.which("dot"):
        picture = svg(fabric_dot(load(ROOT / "fabrics/ceph-lab.yaml"), failed_checks(m)))
    page = tmp / "report.html"
    page.write_text(render_report(m, fabric_svg=picture, previous=previous))
    return page, m


def test_report_renders_in_chromium(tmp_path):
    page, m = report(tmp_path)
    shot, dom, log = chromium(page, tmp_path)

    assert shot.size == (WIDTH, HEIGHT)
    stat = ImageStat.Stat(shot.convert("L"))
    assert stat.stddev[0] > 20, "screenshot is (nearly) one colour"
    assert len(shot.getcolors(maxcolors=1 << 20)) > 200
    # the failed build's header is drawn in red: the inline CSS was applied
    r, g, _ = ImageStat.Stat(shot.crop((0, 0, WIDTH, 100))).mean
    assert r > g + 40

    text = lxml_html.document_fromstring(dom).text_content()
    for stage in m.stages:
        assert stage in text
    for suite in m.tests.values():
        for case in suite.cases:
            assert case.name in text
    assert "<script>alert('evidence is text')</script>" in text  # evidence shown as text, never run
    if shutil.which("dot"):
        assert 'id="node:image"' in dom and 'class="edge failed"' in dom

    assert console(log) == []


def test_console_check_catches_a_blocked_fetch(tmp_path):
    """Control: the same page plus an image from the network logs a CSP violation."""
    page, _ = report(tmp_path)
    page.write_text(page.read_text().replace("<main>", '<main><img src="http://192.0.2.1/x.png" alt="">', 1))
    _, _, log = chromium(page, tmp_path)
    assert any("Content Security Policy" in line for line in console(log)), log

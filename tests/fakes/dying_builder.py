"""A builder killed mid-run, for the reaper's tests: a child Python that starts a Run, does what
the test says and dies without its teardown (os._exit), as after a SIGKILL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.repo import REPO


def builder_that_dies(root: Path, body: str) -> list[str]:
    """What the child printed (split; print with flush=True, os._exit drops buffers). `body` runs
    with `r` the started Run under `root`, and os, Path, DEVNULL, proc and Run imported."""
    code = f"""
import os, sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from subprocess import DEVNULL
from builder.core import proc
from builder.core.runs import Run
r = Run(root=Path({str(root)!r})).start()
{body}
os._exit(0)
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()

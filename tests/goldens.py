"""Golden-file comparison shared by the test suites: UPDATE_GOLDEN=1 rewrites them deliberately."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(rel: str, text: str) -> None:
    path = GOLDEN / rel
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{rel} changed; rerun with UPDATE_GOLDEN=1 if deliberate"

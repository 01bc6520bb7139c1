"""Shared terminal output: rich on stderr for people, plain JSON on stdout for programs."""

from __future__ import annotations

import json
import sys

from rich.console import Console

err = Console(stderr=True, highlight=False)


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

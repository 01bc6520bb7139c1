"""`builder doctor`."""

from __future__ import annotations

COMMANDS: list = []

"""`builder publish`."""

from __future__ import annotations

COMMANDS: list = []

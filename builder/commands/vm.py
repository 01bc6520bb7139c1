"""`builder vm`."""

from __future__ import annotations

COMMANDS: list = []

"""`builder schedule ...` commands."""

from __future__ import annotations

import click


@click.group(name="schedule")
def group() -> None:
    """schedule commands."""


COMMANDS = [group]

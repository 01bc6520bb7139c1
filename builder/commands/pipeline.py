"""`builder pipeline ...` commands."""

from __future__ import annotations

import click


@click.group(name="pipeline")
def group() -> None:
    """pipeline commands."""


COMMANDS = [group]

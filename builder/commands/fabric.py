"""`builder fabric ...` commands."""

from __future__ import annotations

import click


@click.group(name="fabric")
def group() -> None:
    """fabric commands."""


COMMANDS = [group]

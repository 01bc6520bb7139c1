"""`builder runner ...` commands."""

from __future__ import annotations

import click


@click.group(name="runner")
def group() -> None:
    """runner commands."""


COMMANDS = [group]

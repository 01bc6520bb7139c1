"""`builder image ...` commands."""

from __future__ import annotations

import click


@click.group(name="image")
def group() -> None:
    """image commands."""


COMMANDS = [group]

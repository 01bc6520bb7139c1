"""`builder ova ...` commands."""

from __future__ import annotations

import click


@click.group(name="ova")
def group() -> None:
    """ova commands."""


COMMANDS = [group]

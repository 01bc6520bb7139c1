"""What commands share: the project they work on (found once per invocation) and build options."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click

from ..build import Options
from ..image.cache import DEFAULT_ROOT, Cache
from ..project import Project, find

PROJECT_START = "builder.project_start"
_PROJECT = "builder.project"


def current_project() -> Project:
    """The project of this invocation: found upward from -C DIR or the working directory."""
    ctx = click.get_current_context().find_root()
    if _PROJECT not in ctx.meta:
        ctx.meta[_PROJECT] = find(ctx.meta.get(PROJECT_START))
    return ctx.meta[_PROJECT]


def options_from(opts: dict, *, force: bool = False, retest: bool = False) -> Options:
    """The build Options that `build_options` collected (`--force` implies rebuilding every stage)."""
    return Options(accel=opts["accel"], mirror=opts["mirror"], cache=Cache(opts["cache_dir"]),
                   packer_timeout=opts["packer_timeout"], no_cache=opts["no_cache"] or force, retest=retest)


def build_options(f: Callable) -> Callable:
    @click.option("--version", "version", default=None, help="Override the image version from image.yaml.")
    @click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
                  help="QEMU accelerator; auto boots a probe guest to decide.")
    @click.option("--mirror", default=None, help="Debian mirror for mmdebstrap (default: image.yaml's).")
    @click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
                  help="Stage cache.")
    @click.option("--no-cache", is_flag=True, help="Rebuild every stage.")
    @click.option("--packer-timeout", type=float, default=3600, show_default=True,
                  help="Seconds before a hung packer build is killed.")
    @click.option("--quiet", "-q", is_flag=True, help="Only errors and the summary.")
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper

"""Options shared by the commands that build (`image build`, `vm`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click

from typing import TypeVar

from ..build import Build, Options
from ..image.cache import DEFAULT_ROOT, Cache
from ..progress import Reporter
from ..runs import Run
from ..spec import ImageSpec

T = TypeVar("T")


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


def make_build(spec: ImageSpec, run: Run, opts: dict) -> Build:
    options = Options(accel=opts["accel"], mirror=opts["mirror"], cache=Cache(opts["cache_dir"]),
                      packer_timeout=opts["packer_timeout"], no_cache=opts["no_cache"])
    return Build(spec, run, options, Reporter(quiet=opts["quiet"]))


def run_build(spec: ImageSpec, opts: dict, body: Callable[[Build], T]) -> T:
    with Run() as run:
        return body(make_build(spec, run, opts))

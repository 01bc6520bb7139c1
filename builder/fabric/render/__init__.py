"""Renderers: one resolved Topology in, configuration text out. Pure."""

from __future__ import annotations

from collections.abc import Callable

from ..validate import Topology
from . import iproute2, networkd, radvd, vyos

FORMATS: dict[str, Callable[[Topology, str | None], str]] = {
    "vyos": vyos.render,
    "iproute2": iproute2.render,
    "radvd": radvd.render,
    "networkd": networkd.render,
}

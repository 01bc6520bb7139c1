"""A large fabric's checks sample members and draw random AnyIP addresses: the same fabric must
make the same choices every time (a failure reproduces), whatever else uses `random`."""

from __future__ import annotations

import random

from builder.fabric import checks
from builder.fabric.model import Fabric
from builder.fabric.validate import resolve

MANY = resolve(Fabric.model_validate({
    "name": "many",
    "segments": [{"name": "lan", "ipv4": "10.9.0.0/16"}],
    "nodes": [{"name": "gw", "role": "router", "interfaces": [{"attach": "lan", "ipv4": "10.9.0.1"}],
               "anyip": ["192.168.100.0/24"]},
              {"name": "h", "replicas": 50, "interfaces": [{"attach": "lan", "ipv4": "auto"}]}],
}))  # fmt: skip


def _choices(topo, **kw) -> tuple[list[str], list[str]]:
    """(case names, the addresses the AnyIP case pings) for a fresh context on `topo`."""
    pinged: list[str] = []

    def node(argv: list[str], timeout: float) -> tuple[int, str, str]:
        pinged.append(argv[-1])
        return 0, "PING\n1 packets transmitted, 1 received\nrtt", ""

    ctx = checks.Context(topo, {n.name: node for n in topo.nodes}, **kw)
    cases = [c for check in checks.ALL for c in check(ctx)]
    for name, fn in cases:
        if name.startswith("anyip/"):
            fn()
    return [name for name, _ in cases], pinged


def test_the_same_fabric_samples_the_same_pairs_twice():
    names, pinged = _choices(MANY)
    assert len([n for n in names if n.startswith("ping/v4/lan/")]) == 8  # sampled from 50
    assert len(pinged) == MANY.fabric.anyip_probes
    random.seed(1)  # another user of the module's generator changes nothing
    random.random()
    assert _choices(MANY) == (names, pinged)


def test_another_seed_makes_other_choices():
    assert _choices(MANY, seed="other") != _choices(MANY)

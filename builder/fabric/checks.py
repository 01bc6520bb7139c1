"""The fabric's checks, each a named test case with its evidence.

Checks talk to nodes only through executors, `(argv, timeout) -> (rc, stdout, stderr)`, so the
same code runs against a namespace (`ip netns exec`) or a VM's guest agent. Processes that must
outlive one call (the AnyIP TCP service) go through `spawn`, which journals them.

Every random choice (the members a large fabric samples, AnyIP probe addresses, ports, pattern
seeds) comes from the context's own generator, seeded from the fabric by default: the same
fabric is checked the same way every time, so a failure reproduces.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from ..core.results import CaseResult
from .model import Overlay
from .programs import RA_PROBE, TCP_CLIENT, TCP_SERVER
from .validate import Link, ResolvedNode, Topology

Executor = Callable[[list[str], float], tuple[int, str, str]]
Spawn = Callable[[str, list[str]], object]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Context:
    topo: Topology
    execs: dict[str, Executor]  # node name -> executor (nodes we can run commands on)
    spawn: Spawn | None = None  # start a journaled background process on a node
    sample: int = 8  # members per overlay to ping from (a 2000-node fabric samples)
    # take a node's port on a segment down/up on the host (a pulled cable), for failover checks
    link_set: Callable[[str, str, bool], None] | None = None
    seed: int | str | None = None  # default: the fabric's name (fabric_seed)
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # one generator per context: no other user of `random` shifts this fabric's choices
        self.rng = random.Random(fabric_seed(self.topo) if self.seed is None else self.seed)


def fabric_seed(topo: Topology) -> str:
    return f"fabric:{topo.fabric.name}"


Case = tuple[str, Callable[[], str]]  # (name, fn returning evidence or raising CheckFailed)


class CheckFailed(Exception):
    pass


def case(name: str, fn: Callable[[], str]) -> CaseResult:
    t0 = time.monotonic()
    try:
        evidence, passed = fn(), True
    except CheckFailed as e:
        evidence, passed = str(e), False
    except Exception as e:  # a broken probe is a failed case with its reason, not a crash
        evidence, passed = f"{type(e).__name__}: {e}", False
    return CaseResult(name=name, passed=passed, seconds=round(time.monotonic() - t0, 3), evidence=evidence)


def _sh(ctx: Context, node: str, argv: list[str], timeout: float = 15) -> tuple[int, str]:
    rc, out, err = ctx.execs[node](argv, timeout)
    return rc, f"$ {' '.join(argv)}\n{out}{err}".rstrip()


def _ping(ctx: Context, node: str, addr: Address, *, size: int | None = None, df: bool = False,
          count: int = 1) -> tuple[int, str]:
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1"]
    if df:
        argv += ["-M", "do"]
    if size is not None:
        argv += ["-s", str(size)]
    return _sh(ctx, node, argv + [str(addr)])


def expect(ok: bool, evidence: str) -> str:
    """The evidence when `ok`, else a failed case carrying it."""
    if not ok:
        raise CheckFailed(evidence)
    return evidence


def _members(ctx: Context, overlay: str) -> tuple[ResolvedNode | None, list[tuple[ResolvedNode, Link]]]:
    """(router or first member, other members we can run commands on, sampled)."""
    members = ctx.topo.members(overlay)
    target = next((n for n, _ in members if n.role == "router"), members[0][0] if members else None)
    others = [(n, lk) for n, lk in members if n is not target and n.name in ctx.execs]
    if len(others) > ctx.sample:
        others = ctx.rng.sample(others, ctx.sample)
    return target, others


def _reaches(ctx: Context, node: str, addr: Address, count: int) -> str:
    return expect(*_ok(_ping(ctx, node, addr, count=count)))


def ping_overlays(ctx: Context) -> Iterator[Case]:
    for o in ctx.topo.fabric.overlays:
        target, others = _members(ctx, o.name)
        if target is None:
            continue
        for node, _ in others:
            for v in (4, 6):
                dst = target.attached(o.name).addr(v)
                if dst is None or node.attached(o.name).addr(v) is None:
                    continue
                yield f"ping/v{v}/{o.name}/{node.name}->{target.name}", partial(_reaches, ctx, node.name, dst.ip, 2)


def _ok(res: tuple[int, str]) -> tuple[bool, str]:
    return res[0] == 0, res[1]


def ping_segments(ctx: Context) -> Iterator[Case]:
    """A sample of each underlay segment's members pings its first member (across bridge
    shards when the segment is sharded)."""
    for seg in ctx.topo.fabric.segments:
        members = [(n, lk.ipv4) for n, lk in ctx.topo.members(seg.name) if lk.ipv4]
        if len(members) < 2:
            continue
        target, addr = members[0]
        others = [m for m in members[1:] if m[0].name in ctx.execs]
        for node, _ in ctx.rng.sample(others, min(ctx.sample, len(others))):
            yield f"ping/v4/{seg.name}/{node.name}->{target.name}", partial(_reaches, ctx, node.name, addr.ip, 3)


def vni_isolation(ctx: Context) -> Iterator[Case]:
    """A probe address of VNI A's subnet put on a VNI B host must stay unreachable from A."""
    ovs = [(o, o.ipv4) for o in ctx.topo.fabric.overlays if o.ipv4]
    for a, subnet in ovs:
        for b, _ in ovs:
            if a is b or a.underlay != b.underlay:
                continue
            _, src = _members(ctx, a.name)
            _, dst = _members(ctx, b.name)
            if not src or not dst:
                continue
            used = {lk.ipv4.ip for _, lk in ctx.topo.members(a.name) if lk.ipv4}
            probe = next(h for h in reversed(list(subnet.hosts())[-64:]) if h not in used)
            probe_if = ipaddress.IPv4Interface(f"{probe}/{subnet.prefixlen}")
            yield f"isolation/{a.name}-x-{b.name}", partial(_isolated, ctx, src[0][0], dst[0][0], a, b, probe_if)


def _isolated(ctx: Context, src: ResolvedNode, dst: ResolvedNode, a: Overlay, b: Overlay,
              probe: ipaddress.IPv4Interface) -> str:
    dev = dst.attached(b.name).device
    rc, ev = _sh(ctx, dst.name, ["ip", "addr", "add", str(probe), "dev", dev])
    if rc:
        raise CheckFailed(ev)
    try:
        rc, ping = _ping(ctx, src.name, probe.ip, count=2)
    finally:
        _sh(ctx, dst.name, ["ip", "addr", "del", str(probe), "dev", dev])
    ev = (f"{probe.ip} placed on {dst.name} {b.name} (VNI {b.vni}); "
          f"pinged from {src.name} {a.name} (VNI {a.vni})\n{ping}")
    return expect(rc != 0, "LEAK: " + ev)


def mtu(ctx: Context) -> Iterator[Case]:
    """The largest DF payload crosses the overlay; one byte more does not."""
    for o in ctx.topo.fabric.overlays:
        target, others = _members(ctx, o.name)
        if target is None or not others:
            continue
        node = others[0][0]
        for v, hdr in ((4, 28), (6, 48)):
            dst = target.attached(o.name).addr(v)
            if dst is None or node.attached(o.name).addr(v) is None:
                continue
            largest = o.mtu - hdr

            def check(n=node, d=dst, largest=largest):
                rc1, e1 = _ping(ctx, n.name, d.ip, size=largest, df=True)
                rc2, e2 = _ping(ctx, n.name, d.ip, size=largest + 1, df=True)
                return expect(rc1 == 0 and rc2 != 0, f"{e1}\n{e2}")

            yield (f"mtu/v{v}/{o.name}/df-{largest}-passes-{largest + 1}-fails", check)


def _slaac(ctx: Context, node: ResolvedNode, lk: Link, prefixes: list[ipaddress.IPv6Network], wait: float = 15) -> str:
    end = time.monotonic() + wait
    while True:
        rc, out, _ = ctx.execs[node.name](["ip", "-j", "-6", "addr", "show", "dev", lk.device], 10)
        addrs = [a for i in json.loads(out or "[]") for a in i.get("addr_info", [])]
        got = [a for a in addrs if a.get("dynamic") and not a.get("tentative")
               and any(ipaddress.ip_address(a["local"]) in p for p in prefixes)]  # fmt: skip
        if got:
            return ", ".join(f"{a['local']}/{a['prefixlen']} (valid_life {a.get('valid_life_time')})" for a in got)
        if time.monotonic() > end:
            raise CheckFailed(f"no SLAAC address in {', '.join(map(str, prefixes))} on {lk.device}: {addrs}")
        time.sleep(0.2)


def router_adverts(ctx: Context) -> Iterator[Case]:
    for o in ctx.topo.fabric.overlays:
        if not o.ra:
            continue
        _, others = _members(ctx, o.name)
        for node, lk in others:

            def check(node=node, lk=lk, o=o):
                prefixes = [p.prefix for p in o.ra_prefixes]
                rc, out, err = ctx.execs[node.name](["python3", "-c", RA_PROBE, lk.device, "8"], 20)
                if rc:
                    raise CheckFailed(f"RA probe on {lk.device}: {err.strip()}")
                ra = json.loads(out)
                want = sorted(str(ns) for ns in o.ra.name_servers)
                ev = f"RA from {ra['router']}: prefixes {[p['prefix'] for p in ra['prefixes']]}, " \
                     f"RDNSS {ra['rdnss']}, MTU {ra['mtu']}"  # fmt: skip
                expect(sorted(ra["rdnss"]) == want, f"name-servers {ra['rdnss']} != {want}; {ev}")
                expect({p["prefix"] for p in ra["prefixes"]} == {str(p) for p in prefixes}, ev)
                expect(o.ra.link_mtu in (None, ra["mtu"]), ev)
                return f"{ev}\nSLAAC: {_slaac(ctx, node, lk, prefixes)}"

            yield (f"ra/{o.name}/{node.name}", check)


def random_address(prefix: Prefix, rng: random.Random) -> Address:
    """The seed's generator: network address + random host bits (never the network itself)."""
    bits = prefix.max_prefixlen - prefix.prefixlen
    return prefix.network_address + (rng.getrandbits(bits) or 1)


def anyip(ctx: Context) -> Iterator[Case]:
    probes = ctx.topo.fabric.anyip_probes
    for owner in (n for n in ctx.topo.nodes if n.anyip):
        for p in owner.anyip:
            routed = (n for n in ctx.topo.nodes if n.name in ctx.execs and any(r.prefix == p for r in n.routes))
            peer = next(routed, None)
            if peer is None:
                continue
            # drawn here, in order, not in the concurrently run cases: the same fabric pings the same addresses
            addrs = [random_address(p, ctx.rng) for _ in range(probes)]
            yield f"anyip/{p}/ping-{probes}-random/{peer.name}", partial(_pings, ctx, peer.name, addrs)
            if ctx.spawn is not None and owner.name in ctx.execs:
                service = (random_address(p, ctx.rng), 8000 + ctx.rng.randrange(1000), secrets.token_hex(4))
                yield f"anyip/{p}/tcp-freebind/{peer.name}", partial(_tcp, ctx, ctx.spawn, owner, peer, *service)


def _pings(ctx: Context, node: str, addrs: list[Address]) -> str:
    lines: list[str] = []
    for addr in addrs:
        rc, ev = _ping(ctx, node, addr)
        lines.append(ev.splitlines()[-2] if rc == 0 else ev)
        expect(rc == 0, "\n".join(lines))
    return "\n".join(lines)


def _tcp(ctx: Context, spawn: Spawn, owner: ResolvedNode, peer: ResolvedNode, address: Address, port: int,
         token: str) -> str:
    addr = str(address)
    spawn(owner.name, ["python3", "-c", TCP_SERVER, addr, str(port), token])
    rc, out, err = ctx.execs[peer.name](["python3", "-c", TCP_CLIENT, addr, str(port)], 20)
    ev = (f"service on {owner.name} bound to [{addr}]:{port} with IP_FREEBIND; "
          f"{peer.name} got: {out.strip() or err.strip()}")
    return expect(rc == 0 and out.startswith(token), ev)


Check = Callable[[Context], Iterator[Case]]
ALL: tuple[Check, ...] = (ping_segments, ping_overlays, vni_isolation, mtu, router_adverts, anyip)


def run_all(ctx: Context, checks: Iterable[Check] = ALL, workers: int = 8,
            serial: Iterable[Check] = ()) -> list[CaseResult]:
    """Cases are independent (isolation probes use addresses nothing else pings): run them
    concurrently, report them in declaration order. Then the `serial` checks' cases, one at a
    time in order: they depend on each other or disturb the fabric (a path taken down)."""
    cases = [case for check in checks for case in check(ctx)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda c: case(*c), cases))
    return results + [case(*c) for check in serial for c in check(ctx)]

"""The fabric's checks, each a named test case with its evidence.

Checks talk to nodes only through executors, `(argv, timeout) -> (rc, stdout, stderr)`, so the
same code runs against a namespace (`ip netns exec`) or a VM's guest agent. Processes that must
outlive one call (the AnyIP TCP service) go through `spawn`, which journals them.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..publish.manifest import CaseResult
from .probes import RA_PROBE, TCP_CLIENT, TCP_SERVER
from .validate import Link, ResolvedNode, Topology

Executor = Callable[[list[str], float], tuple[int, str, str]]
Spawn = Callable[[str, list[str]], object]


@dataclass
class Context:
    topo: Topology
    execs: dict[str, Executor]  # node name -> executor (nodes we can run commands on)
    spawn: Spawn | None = None  # start a journaled background process on a node
    sample: int = 8  # members per overlay to ping from (a 2000-node fabric samples)
    # take a node's port on a segment down/up on the host (a pulled cable), for failover checks
    link_set: Callable[[str, str, bool], None] | None = None
    rng: random.Random = random.Random()


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


def _ping(ctx: Context, node: str, addr, *, size: int | None = None, df: bool = False, count: int = 1):
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1"]
    if df:
        argv += ["-M", "do"]
    if size is not None:
        argv += ["-s", str(size)]
    return _sh(ctx, node, argv + [str(addr)])


def _expect(ok: bool, evidence: str) -> str:
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


def ping_overlays(ctx: Context) -> Iterator[Case]:
    for o in ctx.topo.fabric.overlays:
        target, others = _members(ctx, o.name)
        for node, _ in others:
            for v in (4, 6):
                dst = target.link(o.name).addr(v) if target else None
                if dst is None or node.link(o.name).addr(v) is None:
                    continue
                yield (f"ping/v{v}/{o.name}/{node.name}->{target.name}",
                            lambda n=node, d=dst: _expect(*_ok(_ping(ctx, n.name, d.ip, count=2))))  # fmt: skip


def _ok(res: tuple[int, str]) -> tuple[bool, str]:
    return res[0] == 0, res[1]


def ping_segments(ctx: Context) -> Iterator[Case]:
    """A sample of each underlay segment's members pings its first member (across bridge
    shards when the segment is sharded)."""
    for seg in ctx.topo.fabric.segments:
        members = [(n, lk) for n, lk in ctx.topo.members(seg.name) if lk.ipv4]
        if len(members) < 2:
            continue
        target = members[0]
        others = [m for m in members[1:] if m[0].name in ctx.execs]
        for node, _ in ctx.rng.sample(others, min(ctx.sample, len(others))):
            yield (f"ping/v4/{seg.name}/{node.name}->{target[0].name}",
                   lambda n=node, d=target[1].ipv4.ip: _expect(*_ok(_ping(ctx, n.name, d, count=3))))  # fmt: skip


def vni_isolation(ctx: Context) -> Iterator[Case]:
    """A probe address of VNI A's subnet put on a VNI B host must stay unreachable from A."""
    ovs = [o for o in ctx.topo.fabric.overlays if o.ipv4]
    for a in ovs:
        for b in ovs:
            if a is b or a.underlay != b.underlay:
                continue
            _, src = _members(ctx, a.name)
            _, dst = _members(ctx, b.name)
            if not src or not dst:
                continue
            used = {lk.ipv4.ip for _, lk in ctx.topo.members(a.name) if lk.ipv4}
            probe = next(h for h in reversed(list(a.ipv4.hosts())[-64:]) if h not in used)
            yield (f"isolation/{a.name}-x-{b.name}",
                        lambda s=src[0][0], d=dst[0][0], a=a, b=b, p=probe: _isolated(ctx, s, d, a, b, p))  # fmt: skip


def _isolated(ctx, src, dst, a, b, probe) -> str:
    addr = f"{probe}/{a.ipv4.prefixlen}"
    rc, ev = _sh(ctx, dst.name, ["ip", "addr", "add", addr, "dev", dst.link(b.name).device])
    if rc:
        raise CheckFailed(ev)
    try:
        rc, ping = _ping(ctx, src.name, probe, count=2)
    finally:
        _sh(ctx, dst.name, ["ip", "addr", "del", addr, "dev", dst.link(b.name).device])
    ev = f"{probe} placed on {dst.name} {b.name} (VNI {b.vni}); pinged from {src.name} {a.name} (VNI {a.vni})\n{ping}"
    return _expect(rc != 0, "LEAK: " + ev)


def mtu(ctx: Context) -> Iterator[Case]:
    """The largest DF payload crosses the overlay; one byte more does not."""
    for o in ctx.topo.fabric.overlays:
        target, others = _members(ctx, o.name)
        if not others:
            continue
        node = others[0][0]
        for v, hdr in ((4, 28), (6, 48)):
            dst = target.link(o.name).addr(v)
            if dst is None or node.link(o.name).addr(v) is None:
                continue
            largest = o.mtu - hdr

            def check(n=node, d=dst, largest=largest):
                rc1, e1 = _ping(ctx, n.name, d.ip, size=largest, df=True)
                rc2, e2 = _ping(ctx, n.name, d.ip, size=largest + 1, df=True)
                return _expect(rc1 == 0 and rc2 != 0, f"{e1}\n{e2}")

            yield (f"mtu/v{v}/{o.name}/df-{largest}-passes-{largest + 1}-fails", check)


def _slaac(ctx: Context, node: ResolvedNode, lk: Link, prefixes, wait: float = 15) -> str:
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
                _expect(sorted(ra["rdnss"]) == want, f"name-servers {ra['rdnss']} != {want}; {ev}")
                _expect({p["prefix"] for p in ra["prefixes"]} == {str(p) for p in prefixes}, ev)
                _expect(o.ra.link_mtu in (None, ra["mtu"]), ev)
                return f"{ev}\nSLAAC: {_slaac(ctx, node, lk, prefixes)}"

            yield (f"ra/{o.name}/{node.name}", check)


def random_address(prefix) -> ipaddress._BaseAddress:
    """The seed's generator: network address + random host bits (never the network itself)."""
    bits = prefix.max_prefixlen - prefix.prefixlen
    return prefix.network_address + (random.getrandbits(bits) or 1)


def anyip(ctx: Context) -> Iterator[Case]:
    for owner in (n for n in ctx.topo.nodes if n.anyip):
        for p in owner.anyip:
            peer = next((n for n in ctx.topo.nodes if n.name in ctx.execs and any(r.prefix == p for r in n.routes)), None)
            if peer is None:
                continue

            def pings(peer=peer, p=p):
                lines = []
                for _ in range(ctx.topo.fabric.anyip_probes):
                    rc, ev = _ping(ctx, peer.name, random_address(p))
                    lines.append(ev.splitlines()[-2] if rc == 0 else ev)
                    _expect(rc == 0, "\n".join(lines))
                return "\n".join(lines)

            yield (f"anyip/{p}/ping-{ctx.topo.fabric.anyip_probes}-random/{peer.name}", pings)
            if ctx.spawn is not None and owner.name in ctx.execs:
                yield (f"anyip/{p}/tcp-freebind/{peer.name}", lambda peer=peer, p=p, o=owner: _tcp(ctx, o, peer, p))


def _tcp(ctx: Context, owner, peer, prefix) -> str:
    addr, port, token = str(random_address(prefix)), 8000 + random.randrange(1000), secrets.token_hex(4)
    ctx.spawn(owner.name, ["python3", "-c", TCP_SERVER, addr, str(port), token])
    rc, out, err = ctx.execs[peer.name](["python3", "-c", TCP_CLIENT, addr, str(port)], 20)
    ev = f"service on {owner.name} bound to [{addr}]:{port} with IP_FREEBIND; {peer.name} got: {out.strip() or err.strip()}"
    return _expect(rc == 0 and out.startswith(token), ev)


ALL = (ping_segments, ping_overlays, vni_isolation, mtu, router_adverts, anyip)


def run_all(ctx: Context, checks=ALL, workers: int = 8, serial=()) -> list[CaseResult]:
    """Cases are independent (isolation probes use addresses nothing else pings): run them
    concurrently, report them in declaration order. Then the `serial` checks' cases, one at a
    time in order: they depend on each other or disturb the fabric (a path taken down)."""
    cases = [case for check in checks for case in check(ctx)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda c: case(*c), cases))
    return results + [case(*c) for check in serial for c in check(ctx)]

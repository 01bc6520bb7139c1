"""Realise a Topology on this host: a namespace per node, a bridge per segment (a VLAN too:
the host has no 8021q and refuses vlan_filtering), veths from bridges into namespaces, taps
for VM nodes, radvd on router nodes.

`plan_host` is pure (names and `ip -batch` scripts); `up` applies it. Every host object
carries the run id and is journaled before it is created, namespaces and links as one
record each so teardown and reaping stay a couple of `ip -batch` calls even at 2000 nodes.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..core import proc
from ..core.errors import BuildFailed
from ..core.runs import Run, hold_sysctl
from .model import BRIDGE_MAX_PORTS, Overlay
from .render import radvd
from .render.iproute2 import node_plan
from .validate import ResolvedNode, Topology


class BridgeFull(BuildFailed):
    pass


def _name(tag: str, suffix: str) -> str:
    n = tag + suffix
    if len(n) > 15:
        raise ValueError(f"link name {n!r} exceeds 15 characters (IFNAMSIZ)")
    return n


@dataclass(frozen=True)
class Port:
    """A bridge port: the host end of a veth into a namespace, or a VM's tap."""

    host: str
    bridge: str
    node: str
    device: str  # name inside the node (veth peer); for a tap, the segment
    mtu: int
    netns: str | None  # None: a tap
    segment: str
    link: int  # index of the node's link it carries


@dataclass
class HostPlan:
    netns: dict[str, str] = field(default_factory=dict)  # node -> namespace
    bridges: list[tuple[str, str, int]] = field(default_factory=list)  # (bridge, segment, mtu)
    joins: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # a, br_a, b, br_b, mtu
    ports: list[Port] = field(default_factory=list)

    @property
    def link_names(self) -> list[str]:
        return [b for b, _, _ in self.bridges] + [j[0] for j in self.joins] + [p.host for p in self.ports]

    def taps(self, node: str) -> list[str]:
        """A VM node's taps in the order of its links (as its NICs and their MACs are)."""
        return [p.host for p in sorted(self.ports, key=lambda p: p.link) if p.node == node and p.netns is None]

    def port(self, node: str, segment: str) -> Port:
        return next(p for p in self.ports if p.node == node and p.segment == segment)

    def netns_script(self) -> str:
        return "".join(f"netns add {ns}\n" for ns in self.netns.values())

    def link_script(self) -> str:
        out = []
        for br, _, mtu in self.bridges:
            out += [f"link add {br} mtu {mtu} type bridge mcast_snooping 0 stp_state 0",
                    f"link set dev {br} addrgenmode none up"]  # fmt: skip
        for a, br_a, b, br_b, mtu in self.joins:
            out += [f"link add {a} mtu {mtu} type veth peer name {b} mtu {mtu}",
                    f"link set dev {a} addrgenmode none master {br_a} up",
                    f"link set dev {b} addrgenmode none master {br_b} up"]  # fmt: skip
        for p in self.ports:
            if p.netns:
                out.append(f"link add {p.host} mtu {p.mtu} type veth peer name {p.device} mtu {p.mtu} netns {p.netns}")
            else:
                out += [f"tuntap add dev {p.host} mode tap", f"link set dev {p.host} mtu {p.mtu}"]
            out.append(f"link set dev {p.host} addrgenmode none master {p.bridge} up")
        return "".join(line + "\n" for line in out)


def shard_sizes(ports: int, limit: int) -> list[int]:
    """Ports per bridge for a segment: one bridge when they fit, else a star of shards whose
    hub spends one port per joining veth."""
    if ports <= limit:
        return [ports]
    n = max(2, math.ceil(ports / (limit - 1)))
    while (limit - (n - 1)) + (n - 1) * (limit - 1) < ports:
        n += 1
    hub = min(ports, limit - (n - 1))
    rest, sizes = ports - hub, [hub]
    for _ in range(n - 1):
        sizes.append(min(rest, limit - 1))
        rest -= sizes[-1]
    return sizes


def plan_host(topo: Topology, tag: str, limit: int = BRIDGE_MAX_PORTS) -> HostPlan:
    plan = HostPlan()
    index = {n.name: i for i, n in enumerate(topo.nodes)}
    for n in topo.nodes:
        if n.kind == "netns":
            plan.netns[n.name] = _name(tag, f"n{index[n.name]}")
    for k, seg in enumerate(topo.fabric.segments):
        members = topo.ports(seg.name)
        sizes = shard_sizes(len(members), limit if seg.shard else max(limit, len(members)))
        names = [_name(tag, f"b{k}")] if len(sizes) == 1 else [_name(tag, f"b{k}s{j}") for j in range(len(sizes))]
        plan.bridges += [(b, seg.name, seg.mtu) for b in names]
        for j in range(1, len(sizes)):
            plan.joins.append((_name(tag, f"j{k}s{j}a"), names[0], _name(tag, f"j{k}s{j}b"), names[j], seg.mtu))
        it = iter(members)
        for br, size in zip(names, sizes, strict=True):
            for _ in range(size):
                node, lk = next(it)
                li = node.links.index(lk)
                if node.kind == "netns":
                    host = _name(tag, f"v{index[node.name]}i{li}")
                    port = Port(host, br, node.name, lk.device, seg.mtu, plan.netns[node.name], seg.name, li)
                else:
                    host = _name(tag, f"t{index[node.name]}i{li}")
                    port = Port(host, br, node.name, seg.name, seg.mtu, None, seg.name, li)
                plan.ports.append(port)
    return plan


def node_script(node: ResolvedNode) -> str:
    """The node's iproute2 plan as an `ip -batch` script (no `ip`, family from the prefix)."""
    lines = ["link set lo up"]
    # no IPv6 on a link: no link-local either, else every namespace's DAD/MLD/RS chatter floods
    # every port of a 2000-port segment and starves ARP
    lines += [f"link set dev {lk.device} addrgenmode none"
              for lk in node.links if not lk.is_overlay and not lk.ipv6]
    for argv in node_plan(node, vlan_devices=False, nodad=True):
        args = [a for a in argv[1:3] if a not in ("-4", "-6")] + argv[3:]
        lines.append(" ".join(args))
    return "".join(line + "\n" for line in lines)


def node_sysctls(topo: Topology, node: ResolvedNode) -> list[str]:
    """Set before the node's devices exist, so `default` reaches them. No DAD in a private
    namespace: it only delays radvd (link-local must be valid) and SLAAC by a second."""
    out = []
    if any(lk.ipv6 for lk in node.links):
        out += ["net.ipv6.conf.default.accept_dad=0"]
    if node.role == "router":
        out += ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]
    for lk in node.links:
        if isinstance(lk.net, Overlay) and lk.net.arp_accept:
            out.append(f"net.ipv4.conf.{lk.device}.arp_accept=1")
        if isinstance(lk.net, Overlay) and lk.net.arp_announce:
            out.append(f"net.ipv4.conf.{lk.device}.arp_announce=2")
    return out


def _ip_batch(script: str, netns: str | None = None) -> None:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    p = proc.run(argv, stdin_data=script.encode(), check=False)
    if p.returncode != 0:
        msg = p.output.strip()
        if "exchange full" in msg.lower():
            raise BridgeFull(
                f"a bridge refused a port ({msg.splitlines()[0]}): the Linux bridge holds at most "
                f"{BRIDGE_MAX_PORTS} ports (BR_PORT_BITS=10, port 0 reserved); shard the segment"
            )
        raise BuildFailed(f"ip -batch{' in ' + netns if netns else ''} failed: {msg}")


def _sysctl(ns: str, settings: list[str]) -> None:
    p = proc.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *settings], check=False)
    if p.returncode:
        raise BuildFailed(f"sysctl in {ns} failed: {p.output.strip()}")


def netns_exec(ns: str) -> Callable[[list[str], float], tuple[int, str, str]]:
    """An executor running argv inside a namespace: (argv, timeout) -> (rc, stdout, stderr)."""

    def run(argv: list[str], timeout: float = 30) -> tuple[int, str, str]:
        try:
            p = proc.run(["ip", "netns", "exec", ns, *argv], timeout=timeout, check=False, merge_stderr=False)
        except proc.ToolTimeout as e:
            return 124, e.output, "timeout"
        return p.returncode, p.output, p.stderr

    return run


def spawn_in(run: Run, ns: str, argv: list[str], log: Path, *,
             signals: tuple[str, ...] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-lived process inside a namespace, journaled in `run` for teardown."""
    with open(log, "ab") as out:
        p, _ = proc.spawn(run, ["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, signals=signals)  # fmt: skip
    return p


@dataclass
class HostFabric:
    """A realised fabric: what `up` built, for checks and for the VM layer (taps)."""

    topo: Topology
    run: Run
    plan: HostPlan
    timings: dict[str, float] = field(default_factory=dict)

    def exec(self, node: str) -> Callable[[list[str], float], tuple[int, str, str]]:
        return netns_exec(self.plan.netns[node])

    def spawn(self, node: str, argv: list[str], log: Path, *,
              signals: tuple[str, ...] | None = None) -> subprocess.Popen[bytes]:
        return spawn_in(self.run, self.plan.netns[node], argv, log, signals=signals)

    def link_set(self, node: str, segment: str, up: bool) -> None:
        """Carrier of a node's port on the host side (a tap down is a pulled cable to a VM)."""
        host = self.plan.port(node, segment).host
        proc.run(["ip", "link", "set", "dev", host, "up" if up else "down"])

    def describe(self) -> dict:
        return {
            "run": self.run.id,
            "fabric": self.topo.fabric.name,
            "netns": self.plan.netns,
            "bridges": [b for b, _, _ in self.plan.bridges],
            "taps": {n.name: self.plan.taps(n.name) for n in self.topo.nodes if n.kind == "vm"},
            "seconds": self.timings,
        }


def _backlog_for(topo: Topology, run: Run) -> None:
    """A broadcast on a bridge is queued to every veth peer in one go, through the per-CPU
    backlog (netdev_max_backlog, 1000 by default): on a larger segment the tail of the flood,
    ARP included, is dropped. Raise it while the run lives; the last large fabric down puts
    the original value back (hold_sysctl), not one that another live fabric raised."""
    need = max((len(topo.ports(s.name)) for s in topo.fabric.segments), default=0) + 1024
    hold_sysctl(run, "net.core.netdev_max_backlog", need)


def up(topo: Topology, run: Run, *, limit: int = BRIDGE_MAX_PORTS, workers: int = 4) -> HostFabric:
    t0 = time.monotonic()
    plan = plan_host(topo, run.tag, limit)
    fab = HostFabric(topo, run, plan)
    if len(plan.ports) > 900:
        _backlog_for(topo, run)
    run.record("link-set", names=plan.link_names)
    run.record("netns-set", names=list(plan.netns.values()))
    _ip_batch(plan.netns_script())
    _ip_batch(plan.link_script())
    fab.timings["host"] = time.monotonic() - t0

    def configure(node: ResolvedNode) -> None:
        ns = plan.netns[node.name]
        sysctls = node_sysctls(topo, node)
        pre = [s for s in sysctls if ".default." in s or "forward" in s]
        if pre:
            _sysctl(ns, pre)
        _ip_batch(node_script(node), ns)
        if len(pre) < len(sysctls):
            _sysctl(ns, [s for s in sysctls if s not in pre])

    t1 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(configure, [n for n in topo.nodes if n.kind == "netns"]))
    fab.timings["nodes"] = time.monotonic() - t1
    for node in topo.nodes:
        if node.kind == "netns" and radvd.ra_links(node):
            conf = run.dir / f"radvd-{node.name}.conf"
            conf.write_text(radvd.render_node(topo, node))
            pid = run.dir / f"radvd-{node.name}.pid"
            fab.spawn(node.name, ["radvd", "-n", "-m", "stderr", "-C", str(conf), "-p", str(pid)],
                      run.dir / f"radvd-{node.name}.log", signals=("SIGKILL",))  # fmt: skip
    fab.timings["up"] = time.monotonic() - t0
    return fab

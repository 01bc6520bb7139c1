"""iSCSI multipath between the fabric's target node (tgtd in its namespace, one portal per
storage subnet) and its initiator (the image under test, a VM with a NIC on each subnet).

The plan is pure (argv lists, the initiator's set-up script, parsers of iscsiadm and
multipath output); `serve` runs the target under a Run.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .. import templates
from ..core import proc
from ..core.errors import BuildFailed
from ..core.runs import Run
from .validate import Topology

IQN_AUTHORITY = "iqn.2024-01.lab.builder"
PORT = 3260
TID, LUN = 1, 1  # LUN 0 is tgtd's controller
CONTROL_DIR = Path("/var/run/tgtd")  # tgtd's fixed socket directory; the port names the socket
CONTROL_PORTS = 32767  # tgtd -C accepts 1..32767

# A dead path must fail over in seconds, not the defaults' two minutes: a NOP-Out every 2 s
# that times out after 2 s drops the connection, and 5 s later its queued I/O fails over.
NODE_SETTINGS = (
    ("node.session.timeo.replacement_timeout", "5"),
    ("node.conn[0].timeo.noop_out_interval", "2"),
    ("node.conn[0].timeo.noop_out_timeout", "2"),
)


@dataclass(frozen=True)
class IscsiPlan:
    target_node: str
    target_iqn: str
    initiator_node: str
    initiator_iqn: str
    portals: tuple[str, ...]  # target addresses, one per storage subnet
    segments: tuple[str, ...]  # the segment each portal sits on
    devices: tuple[str, ...]  # the initiator's device on that segment
    sysctls: tuple[tuple[str, int], ...]
    lun_mib: int

    @property
    def portal_args(self) -> list[str]:
        return [f"{a}:{PORT}" for a in self.portals]


def plan(topo: Topology) -> IscsiPlan | None:
    sc = topo.fabric.iscsi
    if sc is None:
        return None
    tgt, ini = topo.node(sc.target.node), topo.node(sc.initiator.node)
    segs = tuple(next(lk.net.name for lk in tgt.links if lk.ipv4 and lk.ipv4.ip == a) for a in sc.target.portals)
    return IscsiPlan(
        target_node=tgt.name,
        target_iqn=sc.target.iqn or f"{IQN_AUTHORITY}:{topo.fabric.name}.{tgt.name}",
        initiator_node=ini.name,
        initiator_iqn=sc.initiator.iqn or f"{IQN_AUTHORITY}:{topo.fabric.name}.{ini.name}",
        portals=tuple(str(a) for a in sc.target.portals),
        segments=segs,
        devices=tuple(ini.attached(s).device for s in segs),
        sysctls=tuple(sc.initiator.sysctls.items()),
        lun_mib=sc.target.lun_size_mib,
    )


# --- target side -----------------------------------------------------------------------------


def control_port(run_id: str) -> int:
    """The run's preferred tgtd control port, from its id: where `claim_control_port` starts."""
    return 1 + int(run_id, 16) % CONTROL_PORTS


def control_paths(port: int, directory: Path = CONTROL_DIR) -> list[Path]:
    """tgtd's management socket for `port` and the lock file tgtd guards it with."""
    return [directory / f"socket.{port}", directory / f"socket.{port}.lock"]


def claim_control_port(run: Run, directory: Path = CONTROL_DIR) -> int:
    """A control port no other tgtd or run uses: two runs whose ids map to one port would share
    a socket, and the first one down would delete it under the other. The port is claimed by
    creating its lock file exclusively (tgtd opens the existing file and locks it), from the
    run's preferred port on; both files are then this run's, journaled for removal."""
    directory.mkdir(parents=True, exist_ok=True)
    first = control_port(run.id)
    for i in range(CONTROL_PORTS):
        port = 1 + (first - 1 + i) % CONTROL_PORTS
        sock, lock = control_paths(port, directory)
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        # created, then journaled: recorded first, a kill in between would let the reaper
        # delete a lock file another run had just claimed
        run.record("path", path=str(lock))
        run.record("path", path=str(sock))
        return port
    raise BuildFailed(f"no free tgtd control port in {directory} (1..{CONTROL_PORTS} all claimed)")


def tgtd_argv(p: IscsiPlan, port: int) -> list[str]:
    return ["tgtd", "-f", "-C", str(port), "--iscsi", ",".join(f"portal={a}" for a in p.portal_args)]


def tgtadm_argvs(p: IscsiPlan, port: int, backing: Path) -> list[list[str]]:
    adm = ["tgtadm", "-C", str(port), "--lld", "iscsi"]
    return [
        adm + ["--mode", "target", "--op", "new", "--tid", str(TID), "--targetname", p.target_iqn],
        adm + ["--mode", "logicalunit", "--op", "new", "--tid", str(TID), "--lun", str(LUN),
               "--backing-store", str(backing)],  # fmt: skip
        adm + ["--mode", "target", "--op", "bind", "--tid", str(TID), "--initiator-name", p.initiator_iqn],
    ]


def serve(fab, p: IscsiPlan) -> int:
    """Run tgtd in the target's namespace with a sparse LUN in the run directory; return its
    control port. Everything is journaled (the socket files too: a SIGKILLed tgtd leaves them)."""
    run = fab.run
    port = claim_control_port(run)
    backing = run.dir / "iscsi-lun.img"
    with open(backing, "wb") as f:
        f.truncate(p.lun_mib << 20)
    log = run.dir / "tgtd.log"
    # tgtd ignores SIGTERM; nothing of it outlives the run, so SIGKILL is the clean stop
    tgtd = fab.spawn(p.target_node, tgtd_argv(p, port), log, signals=("SIGKILL",))
    sock = control_paths(port)[0]
    end = time.monotonic() + 10
    while not sock.exists():
        if tgtd.poll() is not None or time.monotonic() > end:
            raise BuildFailed(f"tgtd did not start: {log.read_text()[-600:]}")
        time.sleep(0.05)
    for argv in tgtadm_argvs(p, port, backing):
        r = proc.run(argv, check=False, merge_stderr=False)
        if r.returncode:
            raise BuildFailed(f"{' '.join(argv)}: {r.stderr.strip() or r.output.strip()}")
    return port


# --- initiator side --------------------------------------------------------------------------


def initiator_script(p: IscsiPlan) -> str:
    """Sysctls on the storage NICs, the initiator's name, multipath.conf, daemons restarted."""
    multipath_conf = templates.render("fabric/multipath.conf.j2")
    return templates.render("fabric/iscsi-initiator.sh.j2", p=p, multipath_conf=multipath_conf)


def discovery_argv(portal: str) -> list[str]:
    return ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", f"{portal}:{PORT}"]


def node_update_argvs(p: IscsiPlan) -> list[list[str]]:
    return [["iscsiadm", "-m", "node", "-T", p.target_iqn, "-o", "update", "-n", k, "-v", v] for k, v in NODE_SETTINGS]


def login_argv(p: IscsiPlan, portal: str) -> list[str]:
    return ["iscsiadm", "-m", "node", "-T", p.target_iqn, "-p", f"{portal}:{PORT}", "--login"]


SESSIONS_ARGV = ["iscsiadm", "-m", "session", "-P", "3"]
MULTIPATH_ARGV = ["multipath", "-ll"]


def parse_discovery(text: str) -> dict[str, set[str]]:
    """`ADDR:PORT,TPGT IQN` lines -> {IQN: {ADDR, ...}}."""
    out: dict[str, set[str]] = {}
    for m in re.finditer(r"^\[?([0-9a-f.:]+?)\]?:\d+,\d+\s+(\S+)$", text, re.M):
        out.setdefault(m.group(2), set()).add(m.group(1))
    return out


def parse_sessions(text: str) -> dict[str, str | None]:
    """`iscsiadm -m session -P 3` -> {portal address: attached disk (sdX) or None}."""
    out: dict[str, str | None] = {}
    for block in re.split(r"^\s*Current Portal:", text, flags=re.M)[1:]:
        addr = block.split()[0].rsplit(":", 1)[0]
        disk = re.search(r"Attached scsi disk (\w+)", block)
        out[addr] = disk.group(1) if disk else None
    return out


@dataclass(frozen=True)
class MpPath:
    hctl: str
    dev: str
    dm_state: str  # active | failed
    checker: str  # ready | faulty | ghost | ...
    online: str  # running | offline | ...

    @property
    def active_ready(self) -> bool:
        return (self.dm_state, self.checker) == ("active", "ready")

    @property
    def failed_faulty(self) -> bool:
        return (self.dm_state, self.checker) == ("failed", "faulty")


@dataclass(frozen=True)
class MpMap:
    name: str
    wwid: str
    dm: str
    paths: tuple[MpPath, ...]

    def path(self, dev: str) -> MpPath | None:
        return next((x for x in self.paths if x.dev == dev), None)


_MAP = re.compile(r"^(\S+) \((\w+)\) (dm-\d+)")
_PATH = re.compile(r"(\d+:\d+:\d+:\d+)\s+(\w+)\s+\d+:\d+\s+(\w+)\s+(\w+)\s+(\S+)")


def parse_multipath(text: str) -> list[MpMap]:
    maps: list[tuple[str, str, str, list[MpPath]]] = []
    for line in text.splitlines():
        if m := _MAP.match(line):
            maps.append((m.group(1), m.group(2), m.group(3), []))
        elif (m := _PATH.search(line)) and maps:
            maps[-1][3].append(MpPath(*m.groups()))
    return [MpMap(n, w, d, tuple(ps)) for n, w, d, ps in maps]

"""The lab as a cluster: N VMs of the one provisioned image on the fabric's VXLAN overlay, the
lab's reference steps run on each node in turn (the first node creates the cluster, the others
join with its bundle, received here through the guest agents as a trainee copies it with scp),
then the proofs: a quorum of all mons, HEALTH_OK, a seeded object through RADOS, and the last
node powered off -> the others keep a quorum and the object reads back intact.

Every VM boots its own snapshot (a throw-away qcow2 overlay of the image) with its own empty
data disks, and every host object lives in a child Run, gone when this returns or is killed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BuildFailed, UserError
from ..core.results import CaseResult, Suite
from ..core.runs import Run
from ..fabric import session, vmnode
from ..fabric.checks import CheckFailed, Executor
from ..fabric.validate import Topology
from ..image.boot import Vm
from ..spec import ImageSpec
from . import plan as labplan
from . import suite as labsuite
from . import topology as labtopo

BUNDLE = "/root/lab-cluster.tar"  # where 15-share.sh leaves it and 16-join.sh reads it
MAX_BUNDLE = 1 << 20
SETUP_TIMEOUT = 300  # three TCG guests on two busy cores: a minute is not always enough


@dataclass
class ClusterResult:
    suite: Suite
    nodes: tuple[str, ...]
    fsid: uuid.UUID
    seed: int
    memory: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> MiB figures
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"suite": self.suite.model_dump(mode="json"), "nodes": list(self.nodes), "fsid": str(self.fsid),
                "seed": self.seed, "memory": self.memory, "seconds": self.seconds}


def quorum(execute: Executor) -> list[str]:
    rc, out, _ = execute(["ceph", "quorum_status", "--format", "json", "--connect-timeout", "20"], 60)
    if rc != 0 or len(out) > labsuite.MAX_JSON:
        return []
    try:
        return sorted(json.loads(out).get("quorum_names", []))
    except ValueError:
        return []


def wait_quorum(execute: Executor, want: list[str], of: int, timeout: float) -> str:
    """Poll until exactly the mons `want` (of `of` in the monmap) form the quorum."""
    t0, got = time.monotonic(), quorum(execute)
    while got != sorted(want):
        if time.monotonic() - t0 > timeout:
            raise CheckFailed(f"quorum {got}, want {sorted(want)} after {timeout:.0f} s")
        time.sleep(labsuite.POLL)
        got = quorum(execute)
    return f"quorum {len(got)} of {of}: {', '.join(got)} after {time.monotonic() - t0:.0f} s"


def memory_of(vm: Vm, execute: Executor) -> dict[str, int]:
    """The guest's own view (`free -m`) and QEMU's peak RSS (VmHWM) so far, in MiB."""
    out: dict[str, int] = {}
    try:
        rc, text, _ = execute(["free", "-m"], 30)
    except BuildFailed:  # a guest that no longer answers has no view; QEMU's figure still counts
        rc, text = 1, ""
    mem = next((line.split() for line in text.splitlines() if line.startswith("Mem:")), None)
    if rc == 0 and mem and len(mem) >= 3:
        out["guest_total_mib"], out["guest_used_mib"] = int(mem[1]), int(mem[2])
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path(f"/proc/{vm.process.pid}/status").read_text().splitlines()
        out["qemu_peak_rss_mib"] = int(next(ln for ln in status if ln.startswith("VmHWM:")).split()[1]) >> 10
    return out


@dataclass(frozen=True)
class Prepared:
    cluster: labplan.ClusterSpec
    names: tuple[str, ...]
    topo: Topology
    steps: list[tuple[int, str, str]]


def prepare(spec: ImageSpec, topo: Topology, vm_node: str, nodes: int | None, fsid: uuid.UUID) -> Prepared:
    """Pure: the cluster's nodes, network and rendered steps for `nodes` (default: lab.yaml's)."""
    lab = labplan.load_lab(spec)
    if lab.cluster is None:
        raise UserError("the lab has no `cluster` section", file=str(lab.dir / "lab.yaml"), field="cluster")
    names = labtopo.node_names(spec.hostname or spec.name, nodes or lab.cluster.nodes)
    ctopo = labtopo.cluster_topology(topo, vm_node, names)
    steps = labplan.cluster_steps(lab, labplan.plan_cluster(lab, ctopo, names, names, fsid))
    return Prepared(lab.cluster, names, ctopo, steps)


def run_cluster_suite(spec: ImageSpec, topo: Topology, disk: Path, run: Run, *, vm_node: str,
                      nodes: int | None = None, accel: str = "tcg", ready_timeout: float = 600,
                      seed: int | None = None, fsid: uuid.UUID | None = None,
                      progress: Callable[[str], None] = lambda _: None) -> ClusterResult:  # fmt: skip
    """Boot, set up and prove the cluster (see the module docstring); UserError before anything
    boots when the lab, the node count or the derived network is invalid."""
    t0 = time.monotonic()
    fsid = fsid or uuid.uuid4()
    p = prepare(spec, topo, vm_node, nodes, fsid)
    c, names, ctopo, steps = p.cluster, p.names, p.topo, p.steps
    seed = random.randrange(2**32) if seed is None else seed
    data_disks = (spec.data_disk_mibs[0],) * c.osds_per_node
    memory: dict[str, dict[str, int]] = {}
    with Run(root=run.root) as own, contextlib.ExitStack() as stack:
        progress(f"fabric {ctopo.fabric.name} up, booting {len(names)} VMs of the image "
                 f"({c.memory_mib} MiB, {c.cpus} CPU, {len(data_disks)} data disk each)")
        fab = session.up(ctopo, own)
        vms = [session.boot_vm_node(stack, ctopo, n, fab.plan.taps(n), disk, own, accel=accel, cpus=c.cpus,
                                    memory_mib=c.memory_mib, data_disk_mib=data_disks, suffix=f"vm{k + 1}",
                                    wait=False) for k, n in enumerate(names)]  # fmt: skip

        def executor(vm: Vm) -> Executor:
            def execute(argv: list[str], timeout: float) -> tuple[int, str, str]:
                r = vm.agent.exec(argv, timeout=timeout)
                return r.rc, r.stdout, r.stderr
            return execute

        ex = [executor(vm) for vm in vms]

        def ready(k: int) -> str:
            waited = vms[k].agent.wait_ready(ready_timeout, alive=vms[k].alive)
            # the agent starts early in the boot: let the boot finish before the setup contends with it
            _, state, _ = ex[k](["systemctl", "is-system-running", "--wait"], ready_timeout)
            return f"guest agent answered after {waited:.0f} s; boot finished: {state.strip()}"

        def step(k: int, name: str, script: str) -> Callable[[], str]:
            def fn() -> str:
                received = receive_bundle(vms[0], vms[k]) if name == c.join.removesuffix(".j2") else ""
                return received + labsuite.run_script(ex[k], name, script, labsuite.STEP_TIMEOUT)
            return fn

        def stop_last() -> str:
            memory[names[-1]] = memory_of(vms[-1], ex[-1])
            if not vms[-1].poweroff(timeout=300):
                raise CheckFailed(f"{names[-1]} did not power off within 300 s")
            ev = wait_quorum(ex[0], list(names[:-1]), len(names), labsuite.HEALTH_TIMEOUT)
            return f"{names[-1]} powered off\n{ev}"

        survivors = f"{len(names) - 1}-of-{len(names)}"
        plan: list[tuple[str, Callable[[], str]]] = [
            *((f"boot/{n}", (lambda k=k: ready(k))) for k, n in enumerate(names)),
            *((f"setup/{n}/network", (lambda n=n, k=k: _configure(ctopo, n, ex[k]))) for k, n in enumerate(names)),
            *((f"step/{names[k]}/{name}", step(k, name, script)) for k, name, script in steps),
            (f"quorum-{len(names)}", lambda: wait_quorum(ex[0], list(names), len(names), labsuite.HEALTH_TIMEOUT)),
            ("health-ok", lambda: labsuite.wait_health(ex[0], labsuite.is_ok, labsuite.HEALTH_TIMEOUT, "HEALTH_OK")),
            ("rados-put-get", labsuite.digest_check(ex[0], seed, "rados", ("written", "read"))),
            (f"drill/{names[-1]}-off-quorum-{survivors}", stop_last),
            (f"drill/{names[-1]}-off-degraded-data-reads", lambda: labsuite.wait_health(
                ex[0], labsuite.is_degraded, labsuite.HEALTH_TIMEOUT, f"HEALTH_WARN, PG_DEGRADED ({names[-1]} off)")
             + "\n" + labsuite.digest_check(ex[0], seed, "read-back", ("read",))()),
        ]
        cases = labsuite.run_in_order(plan, progress)
        for k, n in enumerate(names):
            if vms[k].alive():
                memory[n] = memory_of(vms[k], ex[k])
                vms[k].poweroff()
    passed = len(cases) == len(plan) and all(cs.passed for cs in cases)
    return ClusterResult(Suite(passed=passed, cases=cases), names, fsid, seed, memory, round(time.monotonic() - t0, 1))


def _configure(topo: Topology, node: str, execute: Executor) -> str:
    res: CaseResult = vmnode.configure(topo, labtopo.without_lab_address(topo.node(node)), execute,
                                       timeout=SETUP_TIMEOUT)
    if not res.passed:
        raise CheckFailed(res.evidence)
    return res.evidence


def receive_bundle(first: Vm, other: Vm) -> str:
    """The first node's bundle onto another node, through both guest agents (base64 out, raw in)."""
    r = first.agent.exec(["base64", "-w0", BUNDLE], timeout=60)
    if r.rc != 0 or len(r.stdout) > MAX_BUNDLE:
        raise CheckFailed(f"cannot read {BUNDLE} on the first node: {r.stderr[-500:]}")
    data = base64.b64decode(r.stdout)
    w = other.agent.exec(["/bin/sh", "-c", f"umask 077 && cat > {BUNDLE}"], timeout=60, input=data)
    if w.rc != 0:
        raise CheckFailed(f"cannot write {BUNDLE}: {w.stderr[-500:]}")
    return f"received {BUNDLE} from the first node: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}\n"

"""Fabrics as sessions: bring one up under a Run and describe it in the run directory, find
the live one for a file, run the checks against it, tear it down from another process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ..core import runs
from ..core.results import CaseResult
from ..core.runs import Run
from ..image import boot as vmboot
from . import checks, iscsi, iscsi_checks, netns, vmnode
from .validate import Topology

STATE = "fabric.json"


def up(topo: Topology, run: Run) -> netns.HostFabric:
    fab = netns.up(topo, run)
    target = iscsi.plan(topo)
    state = {**fab.describe(), "file": _key(topo.source)}
    if target is not None and topo.node(target.target_node).kind == "netns":
        state["tgtd_control_port"] = iscsi.serve(fab, target)
    (run.dir / STATE).write_text(json.dumps(state))
    return fab


def _key(path: Path | None) -> str | None:
    return str(path.resolve()) if path else None


def live(path: Path | None = None, root: Path | None = None) -> list[dict]:
    """States of live runs holding a fabric (of `path` if given), each with its owner pid."""
    root = root or runs.RUN_ROOT
    out = []
    for rid in runs.live_runs(root):
        try:
            st = json.loads((root / rid / STATE).read_text())
            owner = json.loads((root / rid / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        if path is None or st.get("file") == _key(path):
            out.append({**st, "pid": owner["pid"], "dir": str(root / rid)})
    return out


def stop(state: dict, timeout: float = 30) -> bool:
    """Ask a fabric's owner to tear down (SIGTERM unwinds its Run); wait for its directory."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["pid"], signal.SIGTERM)
    end = time.monotonic() + timeout
    while Path(state["dir"]).exists() and time.monotonic() < end:
        time.sleep(0.05)
    return not Path(state["dir"]).exists()


def context(topo: Topology, netns_names: dict[str, str], run: Run,
            extra: dict[str, checks.Executor] | None = None, link_set=None) -> checks.Context:  # fmt: skip
    """Check context over namespaces (possibly another run's) plus extra executors (a VM);
    background processes are journaled in `run`, the one doing the checking. `link_set`
    (`HostFabric.link_set` of the fabric's owner) lets failover checks pull a cable."""
    execs: dict[str, checks.Executor] = {n: netns.netns_exec(ns) for n, ns in netns_names.items()}
    execs.update(extra or {})

    def spawn(node: str, argv: list[str]):
        return netns.spawn_in(run, netns_names[node], argv, run.dir / f"spawn-{node}.log")

    return checks.Context(topo, execs, spawn, link_set=link_set)


def check(topo: Topology, netns_names: dict[str, str], run: Run,
          extra: dict[str, checks.Executor] | None = None, link_set=None) -> list[CaseResult]:  # fmt: skip
    return checks.run_all(context(topo, netns_names, run, extra, link_set), serial=(iscsi_checks.cases,))


def run_image_suite(topo: Topology, vm_exec: checks.Executor, vm_node: str | None = None, run: Run | None = None,
                    boot: Callable[[list[str]], object] | None = None) -> list[CaseResult]:
    """For `builder vm`: bring the fabric up with the image under test as its `vm` node (the
    caller boots it on `taps(...)` via `boot`, then `vm_exec` runs argv in the guest), configure
    the guest's side of the fabric, run all checks, tear the fabric down. Returns the cases for
    the manifest."""
    vm = vm_node or next(n.name for n in topo.nodes if n.kind == "vm")
    own = run is None
    run = run or Run().__enter__()
    try:
        fab = up(topo, run)
        if boot is not None:
            boot(fab.plan.taps(vm))
        setup = vmnode.configure(topo, topo.node(vm), vm_exec)
        return [setup, *check(topo, fab.plan.netns, run, {vm: vm_exec}, fab.link_set)]
    finally:
        if own:
            run.__exit__(None, None, None)


def boot_vm_node(stack: contextlib.ExitStack, topo: Topology, vm_node: str, taps: list[str], disk: Path, run: Run, *,
                 accel: str = "tcg", cpus: int = 2, memory_mib: int = 1024, ready_timeout: float = 300,
                 data_disk_mib: tuple[int, ...] = (), suffix: str = "vm", wait: bool = True):  # fmt: skip
    """Boot `disk` (snapshot, so it stays untouched) as the fabric's `vm_node` on `taps`, NICs
    with the node's MACs, plus empty data disks; ready once its guest agent answers (unless not
    `wait`: several VMs boot at once, the caller waits). The VM lives as long as `stack`; its
    host objects are named `run.name(suffix)`."""
    macs = [lk.hw_id for lk in topo.node(vm_node).links if not lk.is_overlay]
    nics = tuple(vmboot.NicPlan(tap=t, mac=m) for t, m in zip(taps, macs, strict=True))
    plan = vmboot.VmPlan(name=run.name(suffix), disk=disk, accel=accel, cpus=cpus, memory_mib=memory_mib,
                         workdir=run.dir / "vm", nics=nics, data_disk_mib=data_disk_mib)
    vm = stack.enter_context(vmboot.boot(run, plan))
    if wait:
        vm.agent.wait_ready(ready_timeout, alive=vm.alive)
    return vm


def run_image_vm(topo: Topology, disk: Path, run: Run, *, vm_node: str | None = None, accel: str = "tcg",
                 cpus: int = 2, memory_mib: int = 1024, ready_timeout: float = 300,
                 data_disk_mib: tuple[int, ...] = ()) -> list[CaseResult]:  # fmt: skip
    """`run_image_suite` with the VM booted here (`boot_vm_node`), checks through its guest agent."""
    vm = vm_node or next(n.name for n in topo.nodes if n.kind == "vm")
    with contextlib.ExitStack() as stack:
        vms = []

        def start(taps: list[str]) -> None:
            vms.append(boot_vm_node(stack, topo, vm, taps, disk, run, accel=accel, cpus=cpus, memory_mib=memory_mib,
                                    ready_timeout=ready_timeout, data_disk_mib=data_disk_mib))  # fmt: skip

        def vm_exec(argv: list[str], timeout: float) -> tuple[int, str, str]:
            r = vms[0].agent.exec(argv, timeout=timeout)
            return r.rc, r.stdout, r.stderr

        cases = run_image_suite(topo, vm_exec, vm, run, start)
        vms[0].poweroff()
        return cases

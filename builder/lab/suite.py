"""The lab suite: the image's course exercise, run and proven in a throw-away copy of the image.

The provisioned image boots (snapshot) as the fabric's VM node with its empty data disks, the
fabric configures its network but the lab address (the lab's first step sets it, as a trainee
does), then each reference step of lab/ runs through the guest agent, followed by the proofs a
trainer would show: HEALTH_OK, a seeded object through RADOS and through a krbd-mapped RBD
image, and a failure drill (one OSD down -> degraded but the data reads back; up again ->
HEALTH_OK). Every step is a case with its evidence; the first failure stops the rest, since
every later step stands on it. builder/lab/cluster.py runs the same on several VMs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..core.results import CaseResult, Suite
from ..core.runs import Run
from ..fabric import session, vmnode
from ..fabric.checks import CheckFailed, Executor, case
from ..fabric.validate import Topology
from ..spec import ImageSpec
from ..templates import render
from . import plan as labplan
from . import topology as labtopo

OBJECT_BYTES = 16 << 20
RBD_MIB = 256
POOL = "lab"
PG_NUM = 16
WORKDIR = "/root/lab-check"
DRILL_OSD = 0
STEP_TIMEOUT = 1200  # one reference step (three ceph-volume runs under TCG are the longest)
HEALTH_TIMEOUT = 900
POLL = 5
MAX_JSON = 1 << 20  # bytes of `ceph ... --format json` we are willing to parse


def generator(seed: int, size: int = OBJECT_BYTES) -> str:
    """Python the guest runs to write the seeded object; `seeded_digest` computes the same here."""
    return f"import random, sys; sys.stdout.buffer.write(random.Random({int(seed)}).randbytes({int(size)}))"


def seeded_digest(seed: int, size: int = OBJECT_BYTES) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()


def check_scripts(seed: int) -> dict[str, str]:
    """The suite's own guest scripts (not the course's): rados, rbd and the drill's read-back."""
    ctx = {"pool": POOL, "pg_num": PG_NUM, "workdir": WORKDIR, "generator": generator(seed), "size_mib": RBD_MIB}
    return {n: render(f"lab/{n}.sh.j2", **ctx) for n in ("rados", "rbd", "read-back")}


def health(execute: Executor) -> dict:
    rc, out, err = execute(["ceph", "health", "detail", "--format", "json"], 60)
    if rc != 0 or len(out) > MAX_JSON:
        return {"status": "UNREACHABLE", "error": (err or out)[-500:]}
    try:
        return json.loads(out)
    except ValueError:
        return {"status": "UNPARSABLE", "error": out[-500:]}


def wait_health(execute: Executor, want: Callable[[dict], bool], timeout: float, what: str) -> str:
    """Poll until `want(health)`; evidence is the wait and `ceph -s --format json` at the end."""
    t0 = time.monotonic()
    h = health(execute)
    while not want(h):
        if time.monotonic() - t0 > timeout:
            raise CheckFailed(f"no {what} after {timeout:.0f} s; last health:\n{json.dumps(h, indent=1)[-3000:]}")
        time.sleep(POLL)
        h = health(execute)
    waited = time.monotonic() - t0
    _, status, _ = execute(["ceph", "-s", "--format", "json"], 60)
    return f"{what} after {waited:.0f} s\n$ ceph -s --format json\n{status[-4000:]}"


def is_ok(h: dict) -> bool:
    return h.get("status") == "HEALTH_OK"


def is_degraded(h: dict) -> bool:
    return h.get("status") == "HEALTH_WARN" and "PG_DEGRADED" in h.get("checks", {})


def run_script(execute: Executor, name: str, script: str, timeout: float) -> str:
    rc, out, err = execute(["/bin/sh", "-c", script], timeout)
    evidence = f"$ {name}\nexit {rc}\n{(out + err)[-3000:]}"
    if rc != 0:
        raise CheckFailed(evidence)
    return evidence


def _digests(evidence: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in evidence.splitlines() if line.startswith(("written ", "read ")))


def digest_check(execute: Executor, seed: int, name: str, keys: tuple[str, ...]) -> Callable[[], str]:
    """A case: run check script `name` and compare the digests it prints (`keys`) with the seed's."""
    want = seeded_digest(seed)

    def fn() -> str:
        ev = run_script(execute, name, check_scripts(seed)[name], 600)
        got = _digests(ev)
        if any(got.get(k) != want for k in keys):
            raise CheckFailed(f"sha256 differs from the seeded object's {want}\n{ev}")
        return f"seeded object sha256 {want}\n{ev}"
    return fn


def run_in_order(plan: list[tuple[str, Callable[[], str]]],
                 progress: Callable[[str], None] = lambda _: None) -> list[CaseResult]:  # fmt: skip
    """Run the cases in order; stop at the first failure (every later case stands on it)."""
    cases: list[CaseResult] = []
    for name, fn in plan:
        progress(name)
        cases.append(case(name, fn))
        if not cases[-1].passed:
            break
    return cases


def lab_cases(execute: Executor, steps: dict[str, str], seed: int,
              progress: Callable[[str], None] = lambda _: None) -> list[CaseResult]:  # fmt: skip
    """Run the reference steps and the proofs in order; stop at the first failure."""
    digest_matches = functools.partial(digest_check, execute, seed)

    def drill_down() -> str:
        run_script(execute, f"systemctl stop ceph-osd@{DRILL_OSD}", f"systemctl stop ceph-osd@{DRILL_OSD}", 300)
        ev = wait_health(execute, is_degraded, HEALTH_TIMEOUT, f"HEALTH_WARN, PG_DEGRADED (osd.{DRILL_OSD} stopped)")
        return ev + "\n" + digest_matches("read-back", ("read",))()

    def drill_up() -> str:
        run_script(execute, f"systemctl start ceph-osd@{DRILL_OSD}", f"systemctl start ceph-osd@{DRILL_OSD}", 300)
        return wait_health(execute, is_ok, HEALTH_TIMEOUT, f"HEALTH_OK (osd.{DRILL_OSD} back)")

    plan: list[tuple[str, Callable[[], str]]] = [
        *((f"step/{n}", (lambda n=n, s=s: run_script(execute, n, s, STEP_TIMEOUT))) for n, s in steps.items()),
        ("health-ok", lambda: wait_health(execute, is_ok, HEALTH_TIMEOUT, "HEALTH_OK")),
        ("rados-put-get", digest_matches("rados", ("written", "read"))),
        ("rbd-krbd-roundtrip", digest_matches("rbd", ("read",))),
        ("drill/osd-down-degraded-data-reads", drill_down),
        ("drill/osd-up-health-ok", drill_up),
    ]
    return run_in_order(plan, progress)


def run_lab_suite(spec: ImageSpec, topo: Topology, disk: Path, run: Run, *, vm_node: str, accel: str = "tcg",
                  ready_timeout: float = 600, seed: int | None = None, fsid: uuid.UUID | None = None,
                  progress: Callable[[str], None] = lambda _: None) -> Suite:  # fmt: skip
    """Fabric up, the image booted on it as `vm_node` with its data disks, its network set up,
    then `lab_cases`. `run` is the caller's run; the lab's host objects live in a child run."""
    lab = labplan.load_lab(spec)
    seed = random.randrange(2**32) if seed is None else seed
    plan = labplan.plan_one_node(spec, lab, topo, vm_node, fsid or uuid.uuid4())
    steps = labplan.render_steps(lab, plan)
    # A run of its own: host object names carry the run id, and the build's run may still hold
    # the fabric test's fabric; the lab's fabric and VM are gone when this returns.
    with Run(root=run.root) as own, contextlib.ExitStack() as stack:
        progress(f"fabric {topo.fabric.name} up, booting the image as {vm_node} with {len(spec.data_disks)} data disks")
        fab = session.up(topo, own)
        vm = session.boot_vm_node(stack, topo, vm_node, fab.plan.taps(vm_node), disk, own, accel=accel,
                                  cpus=spec.cpus, memory_mib=spec.memory_mib, ready_timeout=ready_timeout,
                                  data_disk_mib=spec.data_disk_mibs)  # fmt: skip

        def execute(argv: list[str], timeout: float) -> tuple[int, str, str]:
            r = vm.agent.exec(argv, timeout=timeout)
            return r.rc, r.stdout, r.stderr

        cases = [vmnode.configure(topo, labtopo.without_lab_address(topo.node(vm_node)), execute)]
        if cases[0].passed:
            cases += lab_cases(execute, steps, seed, progress)
        vm.poweroff()
    return Suite(passed=all(c.passed for c in cases) and len(cases) == len(steps) + 6, cases=cases)

"""iSCSI multipath checks on the fabric's initiator: set-up, discovery, login on both portals,
one map with two active paths, a path pulled on the host under I/O, the path restored.

They run in order after the concurrent checks (each needs the one before, and one takes a
storage path down); a case whose prerequisite failed says so instead of timing out.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import iscsi
from .checks import Case, CheckFailed, Context, expect
from .iscsi import IscsiPlan, MpMap

# The same seeded stream on host and guest (random.randbytes is stable across CPython 3.9+):
# the host knows the checksum the guest must read back.
PATTERN = (
    "import random, sys\n"
    "r, w = random.Random(int(sys.argv[1])), sys.stdout.buffer\n"
    "for _ in range(int(sys.argv[2])): w.write(r.randbytes(1 << 20))\n"
)
WRITE = 'python3 -c "$0" "$1" "$2" | dd of="$3" bs=1M iflag=fullblock oflag=direct'
READ = 'dd if="$0" bs=1M count="$1" iflag=direct status=none | sha256sum'
PATTERN_MIB = 64
FAILOVER_TIMEOUT = 120  # NOP-Out 2+2 s and replacement 5 s, stretched by TCG
RESTORE_TIMEOUT = 90


def pattern_sha256(seed: int, mib: int) -> str:
    r, h = random.Random(seed), hashlib.sha256()
    for _ in range(mib):
        h.update(r.randbytes(1 << 20))
    return h.hexdigest()


@dataclass
class _State:
    ctx: Context
    p: IscsiPlan
    passed: set[str] = field(default_factory=set)
    disks: dict[str, str | None] = field(default_factory=dict)  # portal -> sdX
    map: MpMap | None = None

    def run(self, argv: list[str], timeout: float = 30) -> tuple[int, str, str]:
        return self.ctx.execs[self.p.initiator_node](argv, timeout)

    def must(self, argv: list[str], timeout: float = 30) -> str:
        rc, out, err = self.run(argv, timeout)
        ev = f"$ {' '.join(argv)}\n{out}{err}".rstrip()
        return expect(rc == 0, ev)

    def disk(self, portal: str) -> str:
        """The initiator's disk for `portal` (the login step attached one to each)."""
        disk = self.disks.get(portal)
        if disk is None:
            raise CheckFailed(f"no disk attached through {portal}")
        return disk

    def mapped(self) -> MpMap:
        """The multipath map the two-paths step found."""
        if self.map is None:
            raise CheckFailed("no multipath map")
        return self.map

    def multipath(self) -> tuple[list[MpMap], str]:
        rc, out, err = self.run(iscsi.MULTIPATH_ARGV)
        return iscsi.parse_multipath(out), f"$ multipath -ll\n{out}{err}".rstrip()


def _poll(what: Callable[[], tuple[bool, str]], timeout: float, interval: float = 1) -> tuple[bool, str, float]:
    t0 = time.monotonic()
    while True:
        ok, ev = what()
        if ok or time.monotonic() - t0 > timeout:
            return ok, ev, time.monotonic() - t0
        time.sleep(interval)


def setup(st: _State) -> str:
    return st.must(["/bin/sh", "-c", iscsi.initiator_script(st.p)], 120).split("\n", 1)[1]


def discovery(st: _State) -> str:
    found: set[str] = set()
    lines: list[str] = []
    for portal in st.p.portals:
        lines.append(st.must(iscsi.discovery_argv(portal), 60))
        found |= iscsi.parse_discovery(lines[-1]).get(st.p.target_iqn, set())
    lines.append(f"portals of {st.p.target_iqn}: {', '.join(sorted(found)) or 'none'}")
    return expect(found >= set(st.p.portals), "\n".join(lines))


def login(st: _State) -> str:
    lines = [st.must(argv) for argv in iscsi.node_update_argvs(st.p)]
    lines += [st.must(iscsi.login_argv(st.p, portal), 90) for portal in st.p.portals]

    def attached() -> tuple[bool, str]:
        rc, out, err = st.run(iscsi.SESSIONS_ARGV)
        st.disks = iscsi.parse_sessions(out)
        return all(st.disks.get(a) for a in st.p.portals), f"sessions (portal -> disk): {st.disks}"

    ok, ev, _ = _poll(attached, 30)
    return expect(ok, "\n".join(lines + [ev]))


def two_paths(st: _State) -> str:
    disks = {st.disk(a) for a in st.p.portals}

    def ready() -> tuple[bool, str]:
        maps, ev = st.multipath()
        ok = len(maps) == 1 and {x.dev for x in maps[0].paths if x.active_ready} == disks
        st.map = maps[0] if ok else None
        return ok, ev

    ok, ev, secs = _poll(ready, 60)
    expect(ok, f"{ev}\none map with paths {sorted(disks)} active ready: {ok} after {secs:.1f} s")
    # multipathd may still be reloading the fresh map (opening it fails with EINVAL meanwhile)
    probe = ["dd", f"if=/dev/mapper/{st.mapped().name}", "of=/dev/null", "bs=4096", "count=1", "iflag=direct"]
    usable, out, secs2 = _poll(lambda: _ok(st.run(probe)), 30, 0.5)
    return expect(usable, f"{ev}\none map, paths {sorted(disks)} active ready after {secs:.1f} s; "
                           f"direct read {'works' if usable else 'fails'} after {secs2:.1f} more s\n{out}")  # fmt: skip


def _ok(res: tuple[int, str, str]) -> tuple[bool, str]:
    return res[0] == 0, (res[1] + res[2]).strip()


def _written_mib(st: _State) -> float:
    rc, out, _ = st.run(["cat", f"/sys/block/{st.mapped().dm}/stat"])
    return int(out.split()[6]) / 2048 if rc == 0 else 0.0


def path_failure(st: _State) -> str:
    """Write a seeded pattern through the map; once it is under way pull the last portal's
    cable on the host; the write must finish, the pattern read back intact, the path fail."""
    ctx, p = st.ctx, st.p
    if ctx.link_set is None:
        raise CheckFailed("no host hook to take a path down (Context.link_set)")
    seg, victim = p.segments[-1], st.disk(p.portals[-1])
    seed, mib = ctx.rng.randrange(2**32), min(PATTERN_MIB, p.lun_mib)
    dev = f"/dev/mapper/{st.mapped().name}"
    lines = [f"writing {mib} MiB of pattern seed {seed} to {dev} (dd oflag=direct)"]
    t0 = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        writer = pool.submit(st.run, ["/bin/sh", "-c", WRITE, PATTERN, str(seed), str(mib), dev], 600)
        while (done := _written_mib(st)) < 1 and not writer.done() and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        if writer.done():
            lines.append(f"the write finished before the path could be taken down: {writer.result()}")
            raise CheckFailed("\n".join(lines))
        ctx.link_set(p.initiator_node, seg, False)
        lines.append(f"{p.initiator_node}'s {seg} link down on the host after {done:.0f} MiB written "
                     f"({victim} via {p.portals[-1]})")

        def failed() -> tuple[bool, str]:
            maps, ev = st.multipath()
            path = maps[0].path(victim) if maps else None
            return bool(path and path.failed_faulty), ev

        faulty, mp, secs = _poll(failed, FAILOVER_TIMEOUT)
        lines.append(f"{mp}\n{victim} failed faulty: {faulty} ({secs:.1f} s after link down)")
        rc, out, err = writer.result()
    lines.append(f"writer rc {rc} after {time.monotonic() - t0:.1f} s: {(out + err).strip()}")
    want = pattern_sha256(seed, mib)
    rc2, got, err2 = st.run(["/bin/sh", "-c", READ, dev, str(mib)], 300)
    got = got.split()[0] if got.split() else err2.strip()
    lines.append(f"read back sha256 {got}\nexpected  sha256 {want}")
    return expect(faulty and rc == 0 and rc2 == 0 and got == want, "\n".join(lines))


def restored(st: _State) -> str:
    if st.ctx.link_set is None:
        raise CheckFailed("no host hook to bring a path back (Context.link_set)")
    st.ctx.link_set(st.p.initiator_node, st.p.segments[-1], True)

    def both() -> tuple[bool, str]:
        maps, ev = st.multipath()
        return len(maps) == 1 and len(maps[0].paths) == 2 and all(x.active_ready for x in maps[0].paths), ev

    ok, ev, secs = _poll(both, RESTORE_TIMEOUT)
    return expect(ok, f"{ev}\nlink up; both paths active ready: {ok} after {secs:.1f} s")


# (name, step, the cases it needs)
STEPS = (
    ("iscsi-initiator-setup", setup, ()),
    ("iscsi-discovery", discovery, ("iscsi-initiator-setup",)),
    ("iscsi-login-both-portals", login, ("iscsi-discovery",)),
    ("multipath-two-active-paths", two_paths, ("iscsi-login-both-portals",)),
    ("multipath-path-failure-under-io", path_failure, ("multipath-two-active-paths",)),
    ("multipath-path-restored", restored, ("multipath-two-active-paths",)),
)


def cases(ctx: Context) -> Iterator[Case]:
    p = iscsi.plan(ctx.topo)
    if p is None or p.initiator_node not in ctx.execs:
        return
    st = _State(ctx, p)
    for name, step, needs in STEPS:

        def run(name=name, step=step, needs=needs) -> str:
            missing = [n for n in needs if n not in st.passed]
            if missing:
                raise CheckFailed(f"not run: {', '.join(missing)} did not pass")
            ev = step(st)
            st.passed.add(name)
            return ev

        yield name, run

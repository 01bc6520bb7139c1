"""Run ids, a journal of what a run created on the host, teardown and reaping.

Every host object a run creates (process, namespace, link, mount, loop device, libvirt domain,
temp path) carries the run id in its name and is written to the run's journal *before* it is
created (a process through `proc.spawn`, which journals it first). Teardown walks the journal
backwards on exit, on error and on SIGINT/SIGTERM; after a SIGKILL the journal is still on disk,
so the next run's `reap()` undoes it once the owning process is gone. Live runs are left alone:
a run is dead when its pid is gone or was reused (the recorded start time no longer matches).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import proc
from .errors import BuildFailed
from .proc import alive, proc_start_time

RUN_ROOT = Path(os.environ.get("BUILDER_RUN_DIR", "/run/builder"))
PREFIX = "bx"  # every host object name starts with PREFIX + run id: `bx3fa9c1...`
PROC_SYS = Path("/proc/sys")


def _quiet(argv: list[str]) -> None:
    proc.run(argv, check=False)


def _kill_process(rec: dict) -> None:
    if "pid" in rec:
        _stop(rec["pid"], rec.get("start"), bool(rec.get("group")), rec)
        return
    # journalled, but builder died before it wrote the pid: the tag in the environment finds
    # the process and its children (a group leader takes its group along)
    for pid in proc.tagged(rec["tag"]):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                _stop(pid, proc_start_time(pid), bool(rec.get("group")) and os.getpgid(pid) == pid, rec)


def _stop(pid: int, start: str | None, group: bool, rec: dict) -> None:
    if not alive(pid, start):
        return
    # `signals` lets a record skip a slow graceful exit (radvd spends 5 s on final adverts)
    for name in rec.get("signals", ("SIGTERM", "SIGKILL")):
        sig = signal.Signals[name]
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            if not alive(pid, start):
                return
            threading.Event().wait(0.05)


def _remove_path(rec: dict) -> None:
    p = Path(rec["path"])
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _undo_link(rec: dict) -> None:
    ns = rec.get("netns")
    _quiet((["ip", "-n", ns] if ns else ["ip"]) + ["link", "del", rec["name"]])


def _batch_del(obj: str, names: list[str]) -> None:
    """Delete many namespaces or links with one `ip -force -batch` (a 2000-node fabric would
    otherwise spawn thousands of processes); objects already gone are skipped."""
    script = "".join(f"{obj} del {n}\n" for n in names)
    proc.run(["ip", "-force", "-batch", "-"], stdin_data=script.encode(), check=False)


def _undo_libvirt_domain(rec: dict) -> None:
    try:
        import libvirt
    except ImportError:
        return
    try:
        conn = libvirt.open(rec.get("uri", "qemu:///system"))
    except libvirt.libvirtError:
        return
    try:
        dom = conn.lookupByName(rec["name"])
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()


def _undo_virtualbox_vm(rec: dict) -> None:
    """Power a VirtualBox VM off and delete it with its disks; unregistering fails while the
    session of a just powered-off VM is still closing, so it is retried until the VM is gone."""
    tool, name = rec["tool"], rec["name"]
    _quiet([tool, "controlvm", name, "poweroff"])
    for _ in range(20):
        if proc.run([tool, "unregistervm", name, "--delete"], check=False).returncode == 0:
            return
        listed = proc.run([tool, "list", "vms"], check=False, merge_stderr=False).output
        if f'"{name}"' not in listed:
            return
        threading.Event().wait(1)


def _sysctl_file(key: str, proc_sys: Path) -> Path:
    return proc_sys / key.replace(".", "/")


@contextlib.contextmanager
def _sysctl_holds(root: Path, key: str) -> Iterator[dict]:
    """The shared record of a raised sysctl, {"original": ..., "holders": [run ids]}, under an
    exclusive lock on the run root itself (a lock file would outlive its last holder); written
    back, or removed once nobody holds it, on the way out."""
    root.mkdir(parents=True, exist_ok=True)
    state = root / f".sysctl-{key}.json"
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            holds = json.loads(state.read_text())
        except (OSError, ValueError):
            holds = {"holders": []}
        yield holds
        if holds["holders"]:
            tmp = state.with_suffix(".new")
            tmp.write_text(json.dumps(holds))
            tmp.rename(state)
        else:
            state.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock


def hold_sysctl(run: Run, key: str, at_least: int, *, proc_sys: Path = PROC_SYS) -> None:
    """Raise an integer sysctl to at least `at_least` while `run` lives. Runs that overlap share
    one record under the run root: the first holder keeps the original value, the last to let
    go (teardown, or the reaper after a SIGKILL) puts it back. A run restoring what it saw
    would hand another live run's raised value back to it, or drop it under that run."""
    run.record("sysctl-hold", key=key, run=run.id, root=str(run.root), proc_sys=str(proc_sys))
    path = _sysctl_file(key, proc_sys)
    with _sysctl_holds(run.root, key) as holds:
        current = path.read_text().strip()
        if not holds["holders"]:
            holds["original"] = current
        holds["holders"].append(run.id)
        if int(current) < at_least:
            path.write_text(str(at_least))


def _release_sysctl(rec: dict) -> None:
    root = Path(rec["root"])
    with _sysctl_holds(root, rec["key"]) as holds:
        # a holder whose run directory is gone was undone without us: it holds nothing
        holds["holders"] = [h for h in holds["holders"] if h != rec["run"] and (root / h).is_dir()]
        if not holds["holders"] and "original" in holds:
            _sysctl_file(rec["key"], Path(rec["proc_sys"])).write_text(holds["original"])


UNDO: dict[str, Callable[[dict], None]] = {
    "process": _kill_process,
    "path": _remove_path,
    "netns": lambda r: _quiet(["ip", "netns", "del", r["name"]]),
    "link": _undo_link,
    "sysctl-hold": _release_sysctl,
    "netns-set": lambda r: _batch_del("netns", r["names"]),
    "link-set": lambda r: _batch_del("link", r["names"]),
    "mount": lambda r: _quiet(["umount", "-l", r["path"]]),
    "loop": lambda r: _quiet(["losetup", "-d", r["device"]]),
    "libvirt-domain": _undo_libvirt_domain,
    "virtualbox-vm": _undo_virtualbox_vm,
}


@dataclass
class Run:
    """A run's identity and journal. Use as a context manager: teardown on any exit."""

    id: str = field(default_factory=lambda: secrets.token_hex(3))
    root: Path = RUN_ROOT
    _undo: list[tuple[str, dict]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ending: bool = field(default=False, repr=False)

    @property
    def tag(self) -> str:
        """Prefix for every host object name of this run (`bx` + 6 hex = 8 chars, IFNAMSIZ-safe)."""
        return PREFIX + self.id

    @property
    def dir(self) -> Path:
        return self.root / self.id

    def name(self, suffix: str) -> str:
        n = f"{self.tag}{suffix}"
        if len(n) > 15:
            raise ValueError(f"host object name {n!r} exceeds 15 characters")
        return n

    def start(self) -> Run:
        reap(self.root)
        # the directory appears with its owner already named, so no reaper ever sees it ownerless
        tmp = self.root / f".{self.id}.new"
        tmp.mkdir(parents=True)
        (tmp / "owner.json").write_text(json.dumps({"pid": os.getpid(), "start": proc_start_time(os.getpid())}))
        os.rename(tmp, self.dir)
        return self

    def record(self, kind: str, **rec) -> dict:
        """Journal a host object before creating it, so a SIGKILL cannot orphan it."""
        if kind not in UNDO:
            raise ValueError(f"unknown resource kind {kind}")
        with self._lock:
            if self._ending:
                raise BuildFailed(f"run {self.id} is ending: no new {kind} is made")
            self._undo.append((kind, rec))
            with open(self.dir / "journal.jsonl", "a") as f:
                f.write(json.dumps({"kind": kind, **rec}) + "\n")
        return rec

    def amend(self, rec: dict, **fields) -> None:
        """Add to a record what is known only once its object exists (a spawned process's pid).
        Appended, not rewritten, so a kill mid-write loses nothing; the last line for a tag wins."""
        with self._lock:
            rec.update(fields)
            kind = next(k for k, r in self._undo if r is rec)
            with open(self.dir / "journal.jsonl", "a") as f:
                f.write(json.dumps({"kind": kind, **rec}) + "\n")

    def release(self, rec: dict) -> None:
        """Undo one recorded object now (e.g. a finished stage's mount) and forget it."""
        with self._lock:
            i = next((i for i, (_, r) in enumerate(self._undo) if r is rec), None)
            if i is None:
                return
            kind, _ = self._undo.pop(i)
        UNDO[kind](rec)
        self._rewrite_journal()

    def interrupt(self) -> None:
        """For a run that is being abandoned while another thread still works in it: nothing new
        may be recorded (so nothing new is created) and every recorded process is killed now, so
        that thread fails fast and unwinds its own objects before the teardown."""
        with self._lock:
            self._ending = True
            running = [r for k, r in self._undo if k == "process"]
        for rec in running:
            with contextlib.suppress(Exception):
                _kill_process(rec)

    def keep(self, rec: dict) -> None:
        """Hand a recorded object over to its owner (a provisioned runner VM): forget it
        without undoing it, so neither teardown nor reap removes it."""
        with self._lock:
            self._undo = [(k, r) for k, r in self._undo if r is not rec]
        self._rewrite_journal()

    def _rewrite_journal(self) -> None:
        with self._lock:
            lines = "".join(json.dumps({"kind": k, **r}) + "\n" for k, r in self._undo)
            (self.dir / "journal.jsonl").write_text(lines)

    def teardown(self) -> None:
        while True:
            with self._lock:
                if not self._undo:
                    break
                kind, rec = self._undo.pop()
            with contextlib.suppress(Exception):  # teardown must go on; the reaper retries leftovers
                UNDO[kind](rec)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Run:
        self.start()
        self._old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
        if threading.current_thread() is threading.main_thread():
            for s in self._old:
                signal.signal(s, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.teardown()
        finally:
            if threading.current_thread() is threading.main_thread():
                for s, h in self._old.items():
                    signal.signal(s, h)


def _raise_interrupt(signum, _frame):
    # Turn SIGTERM/SIGHUP into the same unwinding as Ctrl-C so every `with` block tears down.
    raise KeyboardInterrupt(f"signal {signum}")


def _undo_journal(path: Path) -> None:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    last = {r["tag"]: i for i, r in enumerate(recs) if "tag" in r}  # Run.amend: the last line wins
    for i, rec in reversed(list(enumerate(recs))):
        if last.get(rec.get("tag"), i) != i:
            continue
        with contextlib.suppress(Exception):  # undo what can be undone; an unknown kind is skipped
            UNDO[rec.pop("kind")](rec)


def _sweep_named_leftovers(dead: set[str]) -> None:
    """Objects named after a dead run but missing from its journal (killed mid-write)."""
    out = proc.run(["ip", "-j", "netns", "list"], check=False, merge_stderr=False).output
    for ns in json.loads(out or "[]"):
        name = ns["name"]
        if any(name.startswith(PREFIX + rid) for rid in dead):
            _quiet(["ip", "netns", "del", name])
    out = proc.run(["ip", "-j", "link", "show"], check=False, merge_stderr=False).output
    for link in json.loads(out or "[]"):
        if any(link["ifname"].startswith(PREFIX + rid) for rid in dead):
            _quiet(["ip", "link", "del", link["ifname"]])


def _owned_by_a_live_process(d: Path) -> bool:
    """Whether the run directory `d` names, in owner.json, a process that still runs (a run
    directory appears with its owner file written: one without, or unreadable, names none)."""
    try:
        o = json.loads((d / "owner.json").read_text())
    except (OSError, ValueError):
        return False
    return alive(o["pid"], o.get("start"))


def reap(root: Path = RUN_ROOT) -> list[str]:
    """Undo the journals of dead runs; return their ids. Live runs are left alone."""
    if not root.is_dir():
        return []
    dead = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or _owned_by_a_live_process(d):
            continue
        journal = d / "journal.jsonl"
        if journal.exists():
            _undo_journal(journal)
        shutil.rmtree(d, ignore_errors=True)
        dead.append(d.name)
    if dead:
        _sweep_named_leftovers(set(dead))
    return dead


def live_runs(root: Path = RUN_ROOT) -> list[str]:
    return [d.name for d in root.iterdir() if _owned_by_a_live_process(d)] if root.is_dir() else []

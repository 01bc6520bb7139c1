"""The stages of one image build: rootfs → disk → provisioned image → boot test → fabric test → export.

The stage contract: a stage names its inputs (spec fields, rendered templates, tool versions,
the previous stage's key) and its code (source files of builder hashed automatically, so a code
change can never reuse stale output). The cache key hashes both; the entry keeps the input
manifest, and a miss says which inputs changed. *Volatile* inputs (the Debian archive's state,
the version being exported) are in the cache key but not in the *recipe*, the key chain that
says whether the image's content changed (`content_hash`). Test stages record where their
verdict was made (run id, host, accelerator, time); a cache hit reports it as reused.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import inspect
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import host, preflight
from .core import proc
from .core.errors import BuildFailed
from .core.results import Suite
from .core.runs import Run, live_runs
from .fabric import session
from .image import boottest, debcache, disk, export, loopmount, packer, rootfs, sshgate
from .image.boot import NicPlan, VmPlan, boot
from .image.cache import Cache, changes, key, summarise
from .image.disk import DiskPlan
from .lab import plan as labplan
from .lab import suite as labsuite
from .progress import Reporter
from .spec import ImageSpec
from .templates import PACKAGE_TEMPLATES
from .vagrant import box as vbox
from .vagrant import layer as vlayer

PACKAGE = Path(__file__).parent
# Source files (globs relative to builder/) whose content shapes each stage's output, and the
# methods of Build that run the stage (their source is hashed, not all of this module's).
# core/proc.py starts packer and every QEMU (spawn), so it shapes every stage that boots one.
CODE = {
    "rootfs": ("image/rootfs.py", "image/archive.py", "image/debcache.py", "templates/image/customize.sh.j2"),
    "disk": ("image/disk.py", "image/loopmount.py", "templates/image/extlinux.conf.j2", "templates/image/fstab.j2"),
    "provision": ("image/packer.py", "image/sshgate.py", "core/proc.py", "templates/image/packer.pkr.hcl.j2"),
    "boot": ("image/boot.py", "image/boottest.py", "guest.py", "core/proc.py"),
    "fabric": ("image/boot.py", "guest.py", "core/proc.py", "fabric/**/*.py", "templates/fabric/*"),
    "lab": ("lab/*.py", "templates/lab/*", "image/boot.py", "guest.py", "core/proc.py", "fabric/**/*.py",
            "templates/fabric/*"),
    "box": ("vagrant/layer.py", "image/export.py", "image/loopmount.py", "templates/vagrant/layer.sh.j2",
            "templates/image/cleanup.sh.j2"),
    "convert": ("image/export.py", "core/digests.py"),
    "export": ("image/export.py", "image/ovf.py", "templates/ovf/*", "vagrant/box.py", "templates/vagrant/*"),
}
METHODS = {"rootfs": ("rootfs",), "disk": ("disk", "_install_boot"), "provision": ("provision",),
           "boot": ("boot_test",), "fabric": ("fabric_test",), "lab": ("lab_test",),
           "box": ("box",), "convert": ("convert",), "export": ("export", "_export_stage")}
TEST_STAGES = ("boot", "fabric", "lab")
BACKGROUND_NICE = 19
INTERRUPT_WAIT = 30  # seconds an interrupted build waits for its worker thread to unwind


@functools.cache
def code_digest(globs: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for path in sorted({p for g in globs for p in PACKAGE.glob(g) if p.is_file()}):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def method_digest(names: tuple[str, ...]) -> str:
    return hashlib.sha256("".join(inspect.getsource(getattr(Build, n)) for n in names).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    name: str
    what: str  # one line for the progress display
    inputs: dict[str, Any]
    after: tuple[str, ...] = ()  # the stages whose output this one consumes
    volatile: frozenset[str] = frozenset()


@dataclass
class Options:
    accel: str = "auto"
    mirror: str | None = None
    cache: Cache = field(default_factory=Cache)
    packer_timeout: float = 3600
    no_cache: bool = False
    retest: bool = False  # run the test stages again even when their verdict is cached


@dataclass
class Outcome:
    spec: ImageSpec
    accelerator: str
    archive: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    recipes: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    tests: dict[str, Suite] = field(default_factory=dict)
    verdicts: dict[str, dict] = field(default_factory=dict)  # suite -> where and when it was judged
    packages: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    version: str = ""  # the version exported (image.yaml's, or a rebuild's derived one)


def _template_text(*names: str) -> list[str]:
    return [(PACKAGE_TEMPLATES / n).read_text() for n in names]


def _du_bytes(path: Path) -> int:
    return int(proc.output(["du", "-sb", str(path)]).split()[0])


def provenance(run: Run, accelerator: str) -> dict[str, str]:
    """Where and when a verdict was made."""
    return {"run_id": run.tag, "host": socket.gethostname(), "accelerator": accelerator, "at": timestamp()}


def timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Build:
    def __init__(self, spec: ImageSpec, run: Run, opts: Options, reporter: Reporter,
                 archive: dict[str, str] | None = None):
        self.spec, self.run, self.opts, self.rep = spec, run, opts, reporter
        self.tools = host.tool_versions()
        opts.cache.sweep_partials(set(live_runs()))
        accel, why = host.choose_accel(opts.accel)
        self.out = Outcome(spec, accel, archive=dict(archive or {}), tools=self.tools, version=spec.version)
        reporter.note(f"accelerator: {accel} ({why})")

    # -- the stage contract ---------------------------------------------------------------
    def stage_keys(self, st: Stage) -> tuple[str, str, dict[str, Any]]:
        inputs = {**st.inputs, "code": code_digest(CODE[st.name]), "method": method_digest(METHODS[st.name])}
        inputs.update({a: self.out.keys[a] for a in st.after})
        recipe_inputs = {k: v for k, v in inputs.items() if k not in st.volatile}
        recipe_inputs.update({a: self.out.recipes[a] for a in st.after})
        return key(st.name, inputs), key(st.name, recipe_inputs), inputs

    def _stage(self, st: Stage, produce: Callable[[Path], None]) -> Path:
        k, recipe, inputs = self.stage_keys(st)
        self.out.keys[st.name], self.out.recipes[st.name] = k, recipe
        cache, image = self.opts.cache, self.spec.name
        rerun = self.opts.no_cache or (self.opts.retest and st.name in TEST_STAGES)
        hit = None if rerun else cache.lookup(st.name, image, k)
        if hit:
            self.rep.cached(st.name, k)
            self.out.cached.append(st.name)
        else:
            manifest = summarise(inputs)
            if not rerun and (old := cache.latest_inputs(st.name, image)) is not None:
                self.rep.note(f"rebuilding {st.name}: {', '.join(changes(old, manifest)) or 'inputs changed'}")
            tmp = cache.staging(st.name, image, self.run.id)
            self.run.record("path", path=str(tmp))  # a failed or killed stage leaves nothing
            with self.rep.stage(st.name, st.what):
                produce(tmp)
            hit = cache.commit(tmp, st.name, image, k, manifest, replace=rerun)
        self.out.paths[st.name] = hit
        return hit

    def _provenance(self) -> dict[str, str]:
        return provenance(self.run, self.out.accelerator)

    def _verdict(self, name: str, entry: Path) -> Suite:
        """Load a test stage's result; say whether it was judged now or reused from an earlier run."""
        result = json.loads((entry / "result.json").read_text())
        self.out.tests[name] = Suite.model_validate(result["suite"])
        prov = result.get("provenance", {})
        if name in self.out.cached:
            self.out.verdicts[name] = {"ran": False, "reused_from": prov}
        else:
            self.out.verdicts[name] = {"ran": True, **prov}
        return self.out.tests[name]

    # -- stages -----------------------------------------------------------------------------
    def rootfs(self) -> Path:
        s = self.spec
        st = Stage("rootfs", f"mmdebstrap {s.distribution}, {len(rootfs.packages(s))} packages", {
            "distribution": s.distribution, "mirror": self.opts.mirror or s.mirror, "packages": rootfs.packages(s),
            "customize": rootfs.customize_script(s), "mmdebstrap": self.tools["mmdebstrap"],
            **{f"archive.{suite}": d for suite, d in self.out.archive.items()},
        }, volatile=frozenset(f"archive.{suite}" for suite in self.out.archive))

        def produce(tmp: Path) -> None:
            hook = tmp / "customize.sh"
            hook.write_text(rootfs.customize_script(s))
            cached, fresh = self.opts.cache.root / "debs" / s.distribution, tmp / "debs"
            debs = (cached, fresh) if debcache.usable(cached, fresh) else None
            if debs:
                cached.mkdir(parents=True, exist_ok=True)
                fresh.mkdir()
            else:
                self.rep.note(f"no .deb cache: {cached} is not a plain path mmdebstrap's hooks can take")
            argv = rootfs.mmdebstrap_argv(s, tmp / "root", hook, self.opts.mirror, debs)
            proc.run(argv, run_ctx=self.run, on_line=self.rep.update, timeout=3600)
            hook.unlink()
            if debs:
                debcache.keep(fresh, cached)
                shutil.rmtree(fresh)
            (tmp / "size").write_text(str(_du_bytes(tmp / "root")))

        return self._stage(st, produce)

    def disk(self) -> Path:
        s, root_entry = self.spec, self.out.paths["rootfs"]
        disk.check_fits(int((root_entry / "size").read_text()), s.disk_mib, s.file)
        st = Stage("disk", f"bootable {s.disk_mib} MiB disk (ext4 + extlinux)", {
            "disk_mib": s.disk_mib, "templates": _template_text("image/extlinux.conf.j2", "image/fstab.j2"),
            "mkfs.ext4": self.tools["mkfs.ext4"], "extlinux": self.tools["extlinux"],
        }, after=("rootfs",))

        def produce(tmp: Path) -> None:
            plan = disk.plan(s.disk_mib, self.out.keys["disk"], root_entry / "root")
            raw = tmp / "disk.raw"
            with open(raw, "wb") as f:
                f.truncate(plan.size_bytes)
            proc.run(["sfdisk", "--quiet", str(raw)], stdin_data=disk.sfdisk_script().encode())
            self.rep.update("mkfs.ext4 -d (filling the root filesystem)")
            proc.run(disk.mkfs_argv(plan, raw, root_entry / "root"), run_ctx=self.run)
            proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder-packer",
                      "-f", str(tmp / "packer_key")])
            self._install_boot(plan, raw, (tmp / "packer_key.pub").read_text())
            disk.install_mbr(raw)

        return self._stage(st, produce)

    def _install_boot(self, plan: DiskPlan, raw: Path, pubkey: str) -> None:
        with loopmount.mounted(self.run, raw, disk.OFFSET, plan.fs_bytes, self.run.dir / "mnt") as mnt:
            for rel, (content, mode) in disk.files(plan, pubkey).items():
                p = mnt / rel
                p.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if rel.startswith("root/") else 0o755)
                p.write_text(content)
                p.chmod(mode)
            proc.run(["extlinux", "--install", str(mnt / "boot/extlinux")])
            # Host keys for packer's boot only (cleanup.sh.j2, the last provisioner, deletes them;
            # every copy of the image makes its own): made here in a fraction of a second, where
            # the guest's first boot spends 7 s of TCG on the RSA key before sshd listens.
            proc.run(["ssh-keygen", "-A", "-f", str(mnt)])

    def provision(self) -> Path:
        s = self.spec
        scripts = packer.render_scripts(s)
        hcl_probe = packer.render_template(
            s, disk=Path("DISK"), output_dir=Path("OUT"), vm_name="VM", accelerator="ACCEL",
            ssh_key=Path("KEY"), scripts=[Path(n) for n in scripts], console_log=Path("LOG"),
            ssh_port=1, forward_port=2)
        st = Stage("provision", f"packer build ({self.out.accelerator})", {
            "scripts": scripts, "hcl": hcl_probe, "packer": self.tools["packer"],
            "qemu": self.tools["qemu-system-x86_64"],
        }, after=("disk",))

        def produce(tmp: Path) -> None:
            work = tmp / "work"
            (work / "scripts").mkdir(parents=True)
            paths = []
            for name, text in scripts.items():
                p = work / "scripts" / name
                p.write_text(text)
                paths.append(p)
            d = self.out.paths["disk"]
            forward = sshgate.free_port()

            def on_event(ev: packer.PackerEvent) -> None:
                if ev.type == "ui":
                    self.rep.update(ev.message)

            with sshgate.gate(("127.0.0.1", forward), packer.SSH_TIMEOUT_S) as ssh:
                hcl = packer.render_template(
                    s, disk=d / "disk.raw", output_dir=work / "out", vm_name="image.qcow2",
                    accelerator=self.out.accelerator, ssh_key=d / "packer_key", scripts=paths,
                    console_log=tmp / "console.log", ssh_port=ssh.port, forward_port=forward)
                (work / "image.pkr.hcl").write_text(hcl)
                runner = packer.StreamingPacker(self.run, on_event, self.opts.packer_timeout, work,
                                                packer.tmpdir_for(self.run.dir))
                rc, output, _ = runner.build(str(work / "image.pkr.hcl"))
            if rc != 0:
                errors = "\n".join(packer.errors_from(output)) or output[-1500:]
                raise BuildFailed(f"packer build failed (exit {rc}):\n{errors}\n"
                                  f"guest console: {tmp / 'console.log'}")
            (work / "out" / "image.qcow2").rename(tmp / "image.qcow2")
            shutil.rmtree(work)

        return self._stage(st, produce)

    def boot_test(self) -> Suite:
        s = self.spec
        checks = boottest.checks_for(s)
        st = Stage("boot", "boot test (standalone, guest agent)",
                   {"checks": [c.__dict__ for c in checks], "data_disks": s.data_disk_mibs}, after=("provision",))

        def produce(tmp: Path) -> None:
            plan = VmPlan(name=self.run.name("boot"), disk=self.out.paths["provision"] / "image.qcow2",
                          accel=self.out.accelerator, cpus=s.cpus, memory_mib=s.memory_mib,
                          workdir=self.run.dir / "boot", nics=(NicPlan(),), data_disk_mib=s.data_disk_mibs)
            with boot(self.run, plan) as vm:
                self.rep.update("waiting for the guest agent on virtio-serial")
                try:
                    ready = vm.agent.wait_ready(s.boot_test.timeout, alive=vm.alive)
                except BuildFailed as e:
                    raise BuildFailed(f"{e}\nconsole:\n{vm.console_tail()}") from None
                self.rep.update(f"guest agent answered after {ready:.0f} s; running checks")
                suite = boottest.run_checks(checks, lambda argv, t: vm.agent.exec(argv, timeout=t))
                pkgs = vm.agent.exec(list(boottest.PACKAGES_ARGV), timeout=60).stdout
                powered_off = vm.poweroff()
            shutil.copy(plan.console_log, tmp / "console.log")
            result = {"suite": suite.model_dump(), "packages": boottest.parse_packages(pkgs),
                      "clean_poweroff": powered_off, "provenance": self._provenance()}
            (tmp / "result.json").write_text(json.dumps(result, indent=2))
            if not suite.passed:
                # keep the evidence in the report, but never cache a failure
                raise _SuiteFailed("boot", suite, self._provenance())

        entry = self._test_stage(st, produce)
        self.out.packages = json.loads((entry / "result.json").read_text())["packages"]
        return self._verdict("boot", entry)

    def fabric_test(self) -> Suite:
        """Boot the image as the fabric's VM node (NICs on the fabric's taps) and run every check."""
        s = self.spec
        fabric_file, topo, vm_name = preflight.fabric_of(s)
        vm_node = topo.node(vm_name)
        st = Stage("fabric", f"fabric {topo.fabric.name} with the image as {vm_node.name}",
                   {"fabric": fabric_file.read_text(), "data_disks": s.data_disk_mibs}, after=("provision",))

        def produce(tmp: Path) -> None:
            self.rep.update(f"fabric up, VM on its taps, {vm_node.name} as the initiator")
            cases = session.run_image_vm(
                topo, self.out.paths["provision"] / "image.qcow2", self.run, vm_node=vm_node.name,
                accel=self.out.accelerator, cpus=s.cpus, memory_mib=s.memory_mib,
                ready_timeout=s.boot_test.timeout, data_disk_mib=s.data_disk_mibs)
            suite = Suite(passed=bool(cases) and all(c.passed for c in cases), cases=cases)
            result = {"suite": suite.model_dump(), "provenance": self._provenance()}
            (tmp / "result.json").write_text(json.dumps(result, indent=2))
            if not suite.passed:
                raise _SuiteFailed("fabric", suite, self._provenance())

        return self._verdict("fabric", self._test_stage(st, produce))

    def _test_stage(self, st: Stage, produce: Callable[[Path], None]) -> Path:
        try:
            return self._stage(st, produce)
        except _SuiteFailed as e:
            self.out.tests[st.name] = e.suite
            self.out.verdicts[st.name] = {"ran": True, **e.provenance}
            raise

    def lab_test(self) -> Suite | None:
        """The image's course lab (lab/ beside image.yaml) on the fabric, in a throw-away copy of the
        image with its data disks; None for an image without a lab. Runs after fabric_test."""
        s = self.spec
        if not labplan.has_lab(s):
            return None
        lab = labplan.load_lab(s)
        fabric_file, topo, vm_node = preflight.fabric_of(s)
        st = Stage("lab", f"lab: Ceph cluster on {vm_node}'s overlay address", {
            "lab": sorted((str(p.relative_to(lab.dir)), p.read_text()) for p in lab.dir.rglob("*") if p.is_file()),
            "fabric": fabric_file.read_text(), "data_disks": s.data_disk_mibs, "cpus": s.cpus,
            "memory_mib": s.memory_mib,
        }, after=("provision",))

        def produce(tmp: Path) -> None:
            suite = labsuite.run_lab_suite(
                s, topo, self.out.paths["provision"] / "image.qcow2", self.run, vm_node=vm_node,
                accel=self.out.accelerator, ready_timeout=s.boot_test.timeout, progress=self.rep.update)
            result = {"suite": suite.model_dump(), "provenance": self._provenance()}
            (tmp / "result.json").write_text(json.dumps(result, indent=2))
            if not suite.passed:
                raise _SuiteFailed("lab", suite, self._provenance())

        return self._verdict("lab", self._test_stage(st, produce))

    def box(self) -> Path:
        """The Vagrant layer over the provisioned image: a `vagrant` user with Vagrant's insecure key
        and passwordless sudo, only in the boxes (the qcow2, VMDK and OVA never accept that key)."""
        key_file = vlayer.insecure_key_path()
        st = Stage("box", "Vagrant box layer (vagrant user, sudo, insecure key), applied offline",
                   vlayer.stage_inputs(key_file), after=("provision",))

        def produce(tmp: Path) -> None:
            vlayer.make_box_image(self.run, self.out.paths["provision"] / "image.qcow2", tmp / "box.qcow2",
                                  tmp / "box.vmdk", key_file=key_file, on_line=self.rep.update)

        return self._stage(st, produce)

    def convert(self) -> Path:
        """The provisioned image as compressed qcow2 and streamOptimized VMDK, named for no version."""
        st = Stage("convert", "qcow2 (compressed) + VMDK (streamOptimized) of the image",
                   {"qemu-img": self.tools["qemu-img"]}, after=("provision",))

        def produce(tmp: Path) -> None:
            export.convert_image(self.out.paths["provision"] / "image.qcow2", tmp, self.run)

        return self._stage(st, produce)

    @contextlib.contextmanager
    def alongside(self, *stages: Callable[[], object]) -> Iterator[None]:
        """Run `stages` in order on a worker thread while the body runs (the tests): they need only
        the provisioned image, and their conversions fill the cores a TCG guest leaves idle (the
        fabric checks mostly wait on the network). The worker thread runs at the lowest CPU
        priority, which on Linux is per thread and inherited by the processes it starts: a
        guest's boot keeps its pace and qemu-img takes what it leaves (at equal priority the boot
        test took 72 s instead of 30). A failure in the body wins: the worker stops after the
        stage it is in; on a signal the run is interrupted (its processes killed, nothing new
        created) and the worker is waited for while it unwinds. The worker's own failure is
        raised once the body is done."""
        stop = threading.Event()

        def work() -> None:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
            for stage in stages:
                if stop.is_set():
                    return
                stage()

        pool = ThreadPoolExecutor(1, thread_name_prefix="alongside")
        job = pool.submit(work)
        try:
            yield
        except BuildFailed:
            stop.set()
            futures.wait([job])
            raise
        except BaseException:
            stop.set()
            self.run.interrupt()
            futures.wait([job], timeout=INTERRUPT_WAIT)
            raise
        finally:
            pool.shutdown(wait=False)
        job.result()

    def _export_stage(self, version: str) -> Stage:
        s = self.spec
        return Stage("export", "export qcow2 + VMDK + OVA + Vagrant boxes", {
            "appliance": [s.name, s.description, s.cpus, s.memory_mib, s.data_disk_mibs], "version": version,
            "qemu-img": self.tools["qemu-img"],
        }, after=("box", "convert"), volatile=frozenset({"version"}))

    def content_hash(self) -> str:
        """What the published files are made of, whatever their version: the recipe of every stage
        up to the export (the archive's state left out) and the packages the image really holds."""
        _, export_recipe, _ = self.stage_keys(self._export_stage(""))
        return key("content", export_recipe, self.out.packages)

    def export(self, version: str | None = None) -> dict[str, dict]:
        """qcow2, VMDK and OVA named and described for `version` (default: image.yaml's)."""
        version = version or self.spec.version
        spec = self.spec.model_copy(update={"version": version})

        def produce(tmp: Path) -> None:
            files = export.export(spec, self.out.paths["convert"], tmp, self.run)
            box = self.out.paths["box"]
            files.update(vbox.write_boxes(vbox.plan_for(spec), box / "box.qcow2", box / "box.vmdk", tmp))
            (tmp / "files.json").write_text(json.dumps(files, indent=2))

        entry = self._stage(self._export_stage(version), produce)
        self.out.files = json.loads((entry / "files.json").read_text())
        self.out.version = version
        return self.out.files

    def image(self) -> Outcome:
        """Build only: rootfs → disk → provisioned qcow2."""
        self.rootfs()
        self.disk()
        self.provision()
        return self.out


class _SuiteFailed(BuildFailed):
    def __init__(self, name: str, suite: Suite, provenance: dict[str, str]):
        self.suite, self.provenance = suite, provenance
        failed = [c for c in suite.cases if not c.passed]
        lines = [f"{name} test failed: {len(failed)} of {len(suite.cases)} checks"]
        for c in failed:
            lines.append(f"  ✗ {c.name}: {c.evidence.splitlines()[-1] if c.evidence else ''}")
        super().__init__("\n".join(lines))

"""The run module: template → rootfs → disk → provisioned image → boot test → fabric test → export.

Each stage's output lives in the cache under a key hashed from its inputs (the previous stage's
key, the spec fields and templates it reads, the versions of the tools it runs), so an
unchanged rebuild walks the chain of keys and reuses every stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import host, proc
from .errors import BuildFailed, UserError
from .fabric import session
from .fabric import validate as fabric_validate
from .image import boottest, disk, export, ovf, packer, rootfs
from .image.boot import Nic, VmPlan, boot
from .image.cache import Cache, key
from .lab import plan as labplan
from .lab import suite as labsuite
from .progress import Reporter
from .publish.local import sha256_file
from .publish.manifest import Suite
from .runs import Run, live_runs
from .spec import ImageSpec
from .templates import PACKAGE_TEMPLATES

# Bump when a stage's code changes what it produces, to invalidate old cache entries.
STAGE_VERSION = {"rootfs": 1, "disk": 1, "provision": 1, "boot": 1, "fabric": 1, "export": 1, "lab": 1}
FABRIC_CODE = Path(__file__).parent / "fabric"
LAB_CODE = Path(__file__).parent / "lab"


@dataclass
class Options:
    accel: str = "auto"
    mirror: str | None = None
    cache: Cache = field(default_factory=Cache)
    packer_timeout: float = 3600
    no_cache: bool = False


@dataclass
class Outcome:
    spec: ImageSpec
    accelerator: str
    keys: dict[str, str] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    tests: dict[str, Suite] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)


def _template_text(*names: str) -> list[str]:
    return [(PACKAGE_TEMPLATES / n).read_text() for n in names]


def _du_bytes(path: Path) -> int:
    return int(proc.output(["du", "-sb", str(path)]).split()[0])


class Build:
    def __init__(self, spec: ImageSpec, run: Run, opts: Options, reporter: Reporter):
        self.spec, self.run, self.opts, self.rep = spec, run, opts, reporter
        self.tools = host.tool_versions()
        opts.cache.sweep_partials(set(live_runs()))
        accel, why = host.choose_accel(opts.accel)
        self.out = Outcome(spec, accel, tools=self.tools)
        reporter.note(f"accelerator: {accel} ({why})")

    # -- cache plumbing -------------------------------------------------------------------
    def _stage(self, name: str, inputs: list, what: str, produce: Callable[[Path], None]) -> Path:
        k = key(STAGE_VERSION[name], inputs)
        self.out.keys[name] = k
        hit = None if self.opts.no_cache else self.opts.cache.lookup(name, self.spec.name, k)
        if hit:
            self.rep.cached(name, k)
            self.out.cached.append(name)
        else:
            tmp = self.opts.cache.staging(name, self.spec.name, self.run.id)
            self.run.record("path", path=str(tmp))  # a failed or killed stage leaves nothing
            with self.rep.stage(name, what):
                produce(tmp)
            hit = self.opts.cache.commit(tmp, name, self.spec.name, k)
        self.out.paths[name] = hit
        return hit

    # -- stages -----------------------------------------------------------------------------
    def rootfs(self) -> Path:
        s = self.spec
        inputs = [s.distribution, self.opts.mirror or s.mirror, rootfs.packages(s),
                  rootfs.customize_script(s), self.tools["mmdebstrap"]]

        def produce(tmp: Path) -> None:
            hook = tmp / "customize.sh"
            hook.write_text(rootfs.customize_script(s))
            argv = rootfs.mmdebstrap_argv(s, tmp / "root", hook, self.opts.mirror)
            proc.run(argv, run_ctx=self.run, on_line=self.rep.update, timeout=3600)
            hook.unlink()
            (tmp / "size").write_text(str(_du_bytes(tmp / "root")))

        return self._stage("rootfs", inputs, f"mmdebstrap {s.distribution}, {len(rootfs.packages(s))} packages", produce)

    def disk(self) -> Path:
        s, root_entry = self.spec, self.out.paths["rootfs"]
        disk.check_fits(int((root_entry / "size").read_text()), s.disk_mib, s.file)
        inputs = [self.out.keys["rootfs"], s.disk_mib, _template_text("image/extlinux.conf.j2", "image/fstab.j2"),
                  self.tools["mkfs.ext4"], self.tools["extlinux"]]

        def produce(tmp: Path) -> None:
            plan = disk.plan(s.disk_mib, self.out.keys["disk"], root_entry / "root")
            raw = tmp / "disk.raw"
            with open(raw, "wb") as f:
                f.truncate(plan.size_bytes)
            proc.run(["sfdisk", "--quiet", str(raw)], stdin_data=disk.sfdisk_script().encode())
            self.rep.update("mkfs.ext4 -d (filling the root filesystem)")
            proc.run(disk.mkfs_argv(plan, raw, root_entry / "root"), run_ctx=self.run)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder-packer",
                            "-f", str(tmp / "packer_key")], check=True)
            self._install_boot(plan, raw, (tmp / "packer_key.pub").read_text())
            disk.install_mbr(raw)

        return self._stage("disk", inputs, f"bootable {s.disk_mib} MiB disk (ext4 + extlinux)", produce)

    def _install_boot(self, plan: disk.DiskPlan, raw: Path, pubkey: str) -> None:
        mnt = self.run.dir / "mnt"
        mnt.mkdir(exist_ok=True)
        loop_dev = proc.output(disk.losetup_argv(plan, raw)).strip()
        loop = self.run.record("loop", device=loop_dev)
        mount = self.run.record("mount", path=str(mnt))
        proc.run(["mount", loop_dev, str(mnt)])
        try:
            for rel, (content, mode) in disk.files(plan, pubkey).items():
                p = mnt / rel
                p.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if rel.startswith("root/") else 0o755)
                p.write_text(content)
                p.chmod(mode)
            proc.run(["extlinux", "--install", str(mnt / "boot/extlinux")])
        finally:
            self.run.release(mount)
            self.run.release(loop)

    def provision(self) -> Path:
        s = self.spec
        scripts = packer.render_scripts(s)
        hcl_probe = packer.render_template(
            s, disk=Path("DISK"), output_dir=Path("OUT"), vm_name="VM", accelerator="ACCEL",
            ssh_key=Path("KEY"), scripts=[Path(n) for n in scripts], console_log=Path("LOG"))
        inputs = [self.out.keys["disk"], scripts, hcl_probe, self.tools["packer"], self.tools["qemu-system-x86_64"]]

        def produce(tmp: Path) -> None:
            work = tmp / "work"
            (work / "scripts").mkdir(parents=True)
            paths = []
            for name, text in scripts.items():
                p = work / "scripts" / name
                p.write_text(text)
                paths.append(p)
            d = self.out.paths["disk"]
            hcl = packer.render_template(
                s, disk=d / "disk.raw", output_dir=work / "out", vm_name="image.qcow2",
                accelerator=self.out.accelerator, ssh_key=d / "packer_key", scripts=paths,
                console_log=tmp / "console.log")
            (work / "image.pkr.hcl").write_text(hcl)

            def on_event(ev: packer.PackerEvent) -> None:
                if ev.type == "ui":
                    self.rep.update(ev.message)

            runner = packer.StreamingPacker(self.run, on_event, self.opts.packer_timeout, work)
            rc, output, _ = runner.build(str(work / "image.pkr.hcl"))
            if rc != 0:
                errors = "\n".join(packer.errors_from(output)) or output[-1500:]
                raise BuildFailed(f"packer build failed (exit {rc}):\n{errors}\n"
                                  f"guest console: {tmp / 'console.log'}")
            (work / "out" / "image.qcow2").rename(tmp / "image.qcow2")
            shutil.rmtree(work)

        return self._stage("provision", inputs, f"packer build ({self.out.accelerator})", produce)

    def boot_test(self) -> Suite:
        s = self.spec
        checks = boottest.checks_for(s)
        inputs = [self.out.keys["provision"], [c.__dict__ for c in checks], s.data_disk_mibs]

        def produce(tmp: Path) -> None:
            plan = VmPlan(name=self.run.name("boot"), disk=self.out.paths["provision"] / "image.qcow2",
                          accel=self.out.accelerator, cpus=s.cpus, memory_mib=s.memory_mib,
                          workdir=self.run.dir / "boot", nics=(Nic(),), data_disk_mib=s.data_disk_mibs)
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
                      "clean_poweroff": powered_off}
            (tmp / "result.json").write_text(json.dumps(result, indent=2))
            if not suite.passed:
                # keep the evidence in the report, but never cache a failure
                raise _SuiteFailed("boot", suite)

        try:
            entry = self._stage("boot", inputs, "boot test (standalone, guest agent)", produce)
        except _SuiteFailed as e:
            self.out.tests["boot"] = e.suite
            raise
        result = json.loads((entry / "result.json").read_text())
        self.out.tests["boot"] = Suite.model_validate(result["suite"])
        self.out.packages = result["packages"]
        return self.out.tests["boot"]

    def fabric_test(self) -> Suite:
        """Boot the image as the fabric's VM node (NICs on the fabric's taps) and run every check."""
        s = self.spec
        if s.fabric is None:
            raise UserError("every image is tested in a fabric: set `fabric:`", file=str(s.file), field="fabric")
        fabric_file = (s.dir / s.fabric).resolve()
        topo = fabric_validate.load(fabric_file)
        vm_node = next((n for n in topo.nodes if n.kind == "vm"), None)
        if vm_node is None:
            raise UserError("the fabric has no `kind: vm` node for the image", file=str(fabric_file), field="nodes")
        code = sorted(sha256_file(p) for p in [*FABRIC_CODE.rglob("*.py"), *(PACKAGE_TEMPLATES / "fabric").rglob("*")]
                      if p.is_file())
        inputs = [self.out.keys["provision"], fabric_file.read_text(), code, s.data_disk_mibs]

        def produce(tmp: Path) -> None:
            self.rep.update(f"fabric up, VM on its taps, {vm_node.name} as the initiator")
            cases = session.run_image_vm(
                topo, self.out.paths["provision"] / "image.qcow2", self.run, vm_node=vm_node.name,
                accel=self.out.accelerator, cpus=s.cpus, memory_mib=s.memory_mib,
                ready_timeout=s.boot_test.timeout, data_disk_mib=s.data_disk_mibs)
            suite = Suite(passed=bool(cases) and all(c.passed for c in cases), cases=cases)
            (tmp / "result.json").write_text(suite.model_dump_json(indent=2))
            if not suite.passed:
                raise _SuiteFailed("fabric", suite)

        try:
            entry = self._stage("fabric", inputs, f"fabric {topo.fabric.name} with the image as {vm_node.name}",
                                produce)
        except _SuiteFailed as e:
            self.out.tests["fabric"] = e.suite
            raise
        self.out.tests["fabric"] = Suite.model_validate_json((entry / "result.json").read_text())
        return self.out.tests["fabric"]

    def lab_test(self) -> Suite | None:
        """The image's course lab (lab/ beside image.yaml) on the fabric, in a throw-away copy of the
        image with its data disks; None for an image without a lab. Runs after fabric_test."""
        s = self.spec
        if not labplan.has_lab(s):
            return None
        lab = labplan.load_lab(s)
        topo = fabric_validate.load((s.dir / s.fabric).resolve())
        vm_node = next(n.name for n in topo.nodes if n.kind == "vm")
        code = sorted(sha256_file(p) for p in [*LAB_CODE.rglob("*.py"), *(PACKAGE_TEMPLATES / "lab").rglob("*"),
                                               *lab.dir.rglob("*")] if p.is_file())  # fmt: skip
        inputs = [self.out.keys["fabric"], code, s.data_disk_mibs, s.cpus, s.memory_mib]

        def produce(tmp: Path) -> None:
            suite = labsuite.run_lab_suite(
                s, topo, self.out.paths["provision"] / "image.qcow2", self.run, vm_node=vm_node,
                accel=self.out.accelerator, ready_timeout=s.boot_test.timeout, progress=self.rep.update)
            (tmp / "result.json").write_text(suite.model_dump_json(indent=2))
            if not suite.passed:
                raise _SuiteFailed("lab", suite)

        try:
            entry = self._stage("lab", inputs, f"lab: Ceph cluster on {vm_node}'s overlay address", produce)
        except _SuiteFailed as e:
            self.out.tests["lab"] = e.suite
            raise
        self.out.tests["lab"] = Suite.model_validate_json((entry / "result.json").read_text())
        return self.out.tests["lab"]

    def export(self) -> dict[str, dict]:
        s = self.spec
        # the descriptor depends on the OVF writer's code and templates as well as the spec
        inputs = [self.out.keys["provision"], s.name, s.version, s.description, s.cpus, s.memory_mib, s.data_disk_mibs,
                  sha256_file(Path(ovf.__file__)), self.tools["qemu-img"],
                  sorted(sha256_file(p) for p in (PACKAGE_TEMPLATES / "ovf").glob("*"))]

        def produce(tmp: Path) -> None:
            files = export.export(s, self.out.paths["provision"] / "image.qcow2", tmp, self.run)
            (tmp / "files.json").write_text(json.dumps(files, indent=2))

        entry = self._stage("export", inputs, "export qcow2 + VMDK + OVA", produce)
        self.out.files = json.loads((entry / "files.json").read_text())
        return self.out.files

    def image(self) -> Outcome:
        """Build only: rootfs → disk → provisioned qcow2."""
        self.rootfs()
        self.disk()
        self.provision()
        return self.out


class _SuiteFailed(BuildFailed):
    def __init__(self, name: str, suite: Suite):
        self.suite = suite
        failed = [c for c in suite.cases if not c.passed]
        lines = [f"{name} test failed: {len(failed)} of {len(suite.cases)} checks"]
        for c in failed:
            lines.append(f"  ✗ {c.name}: {c.evidence.splitlines()[-1] if c.evidence else ''}")
        super().__init__("\n".join(lines))

"""Stage 3: provisioning with packer (qemu builder, shell provisioner over SSH) via packer-py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packerpy import PackerExecutable

from ..core import proc
from ..core.errors import UserError
from ..core.runs import RUN_ROOT, Run
from ..spec import ImageSpec
from ..templates import render

COMMA = "%!(PACKER_COMMA)"
# packer starts each plugin on a unix socket $TMPDIR/packer-pluginNNNNNNNNNN, and sun_path holds
# 107 bytes: under a deep stage directory (a --cache-dir of a user's project) the bind fails with
# "invalid argument" and packer 1.6 then panics (nil pointer in CoreBuild.Run). So its TMPDIR is
# the run's own directory under /run/builder: short, and removed with the run.
PLUGIN_SOCKET_NAME_MAX = len("packer-plugin") + 10
SUN_PATH_MAX = 107
SSH_TIMEOUT_S = 15 * 60


def tmpdir_for(run_dir: Path) -> Path:
    """packer's TMPDIR inside `run_dir`; UserError when its plugin sockets would not fit."""
    tmp = run_dir / "packer"
    if len(os.fsencode(tmp)) + 1 + PLUGIN_SOCKET_NAME_MAX > SUN_PATH_MAX:
        raise UserError(f"packer's plugin sockets in {tmp} would exceed the {SUN_PATH_MAX}-byte unix socket "
                        "path limit: point BUILDER_RUN_DIR at a shorter directory", field="BUILDER_RUN_DIR")
    return tmp


def check_run_root(root: Path = RUN_ROOT) -> None:
    """Before any stage: would a run directory under `root` hold packer's sockets?"""
    tmpdir_for(root / ("0" * 6))  # a run id: 6 hex digits


@dataclass(frozen=True)
class PackerEvent:
    timestamp: int
    target: str
    type: str
    data: tuple[str, ...]

    @property
    def message(self) -> str:
        """The human text of a `ui` event (`ui,say,...`, `ui,message,...`, `ui,error,...`)."""
        if self.type == "ui" and len(self.data) >= 2:
            return self.data[1].replace("\\n", "\n").strip()
        return ",".join(self.data)


def parse_machine_readable(line: str) -> PackerEvent | None:
    """`timestamp,target,type,data...`; commas inside data are escaped as %!(PACKER_COMMA)."""
    parts = line.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    data = tuple(p.replace(COMMA, ",") for p in parts[3:])
    return PackerEvent(int(parts[0]), parts[1], parts[2], data)


def render_template(
    spec: ImageSpec,
    *,
    disk: Path,
    output_dir: Path,
    vm_name: str,
    accelerator: str,
    ssh_key: Path,
    scripts: list[Path],
    console_log: Path,
    ssh_port: int,
    forward_port: int,
    ssh_timeout: str = f"{SSH_TIMEOUT_S}s",
) -> str:
    """`forward_port`: QEMU's host port forwarded to the guest's sshd; `ssh_port`: the SSH gate's
    port in front of it, where packer connects."""
    return render(
        "image/packer.pkr.hcl.j2",
        spec=spec,
        disk_url=f"file://{disk}",
        output_dir=str(output_dir),
        vm_name=vm_name,
        accelerator=accelerator,
        ssh_key=str(ssh_key),
        scripts=[str(s) for s in scripts],
        console_log=str(console_log),
        ssh_port=int(ssh_port),
        forward_port=int(forward_port),
        ssh_timeout=ssh_timeout,
    )


def render_scripts(spec: ImageSpec) -> dict[str, str]:
    """builder's bootloader step (GRUB), the image's provisioning templates, then builder's
    cleanup: file name -> script text, numbered in the order packer runs them."""
    scripts = [("builder-grub.sh", render("image/grub.sh.j2", spec=spec))]
    scripts += [(Path(rel).name.removesuffix(".j2"), render(rel, spec.dir, spec=spec)) for rel in spec.provision]
    scripts.append(("builder-cleanup.sh", render("image/cleanup.sh.j2", spec=spec)))
    return {f"{i:02d}-{name}": text for i, (name, text) in enumerate(scripts)}


class StreamingPacker(PackerExecutable):
    """packer-py builds packer's argv, but its execute_cmd() waits in communicate(): all output is
    buffered until packer exits and there is no timeout, so a 10-minute build shows nothing and a
    hung one hangs us forever. This runs the same argv through proc.run, which streams each
    machine-readable line to a callback and kills packer's whole process group (packer and its
    qemu child) on timeout."""

    def __init__(self, run: Run, on_event: Callable[[PackerEvent], None], timeout: float, workdir: Path,
                 tmpdir: Path):
        super().__init__(executable_path=shutil.which("packer") or "packer", machine_readable=True)
        self.run, self.on_event, self.timeout, self.workdir, self.tmpdir = run, on_event, timeout, workdir, tmpdir

    def argv(self, packer_cmd: str, template: str, **kwargs) -> list[str]:
        return [
            self.configuration[PackerExecutable.PATH],
            packer_cmd,
            "-machine-readable",
            *self._explode_args(**kwargs),
            template,
        ]

    def execute_cmd(self, packer_cmd, template=None, **kwargs):
        # packer's download cache stays in the stage dir, its temp files and sockets in tmpdir
        env = {
            **os.environ,
            "CHECKPOINT_DISABLE": "1",
            "PACKER_CACHE_DIR": str(self.workdir / "packer_cache"),
            "TMPDIR": str(self.tmpdir),
        }
        self.tmpdir.mkdir(parents=True, exist_ok=True)

        def on_line(line: str) -> None:
            ev = parse_machine_readable(line)
            if ev is not None:
                self.on_event(ev)

        res = proc.run(
            self.argv(packer_cmd, template, **kwargs),
            run_ctx=self.run,
            timeout=self.timeout,
            on_line=on_line,
            check=False,
            cwd=self.workdir,
            env=env,
            what="packer build",
        )
        return res.returncode, res.output, ""


def errors_from(output: str) -> list[str]:
    """The ui,error messages of a failed build, for a one-screen failure report."""
    out = []
    for line in output.splitlines():
        ev = parse_machine_readable(line)
        if ev and ev.type == "ui" and ev.data and ev.data[0] == "error":
            out.append(ev.message)
    return out

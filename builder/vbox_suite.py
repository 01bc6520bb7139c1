"""The `virtualbox` suite: an OVA proven by VirtualBox itself, on hosts that have it.

Trainees import our OVAs into VirtualBox, so the proof is VirtualBox's own import: the VM it makes
(CPUs, memory, SATA disks including the empty data disks, NIC 1 on NAT) must match the descriptor,
and that VM must boot headless and answer SSH through a NAT port-forward with the image's smoke
checks. An OVA cannot carry a key we inject, so SSH logs in with the image user's lab password
(sshpass, the password in its environment, never in argv).

The VM and its throw-away basefolder are journalled in the run (builder/core/runs.py) before they
exist, so an error, Ctrl-C or a SIGKILL followed by the next run's reap powers the VM off,
unregisters it with its disks and removes the folder.

Pure: the VBoxManage argv plans, the `showvminfo --machinereadable` parser and the comparison of
expected with actual hardware. Thin: `run_suite`, which runs them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .core import proc
from .core.errors import BuildFailed, UserError
from .core.results import CaseResult, Suite
from .core.runs import Run
from .image import ova
from .spec import ImageSpec, User

SUITE = "virtualbox"
# what reaches VBoxManage's argv and a file name: our own run tags and plain names only
VM_NAME = re.compile(r"^bx[0-9a-f]{6}-ova$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]{1,1000}$")
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")
KEY_VALUE = re.compile(r'^("(?:[^"\\]|\\.)*"|[^=]+)=("(?:[^"\\]|\\.)*"|.*)$')
MAX_INFO = 1 << 20  # showvminfo of a real VM is a few KiB
SSH_OPTS = (
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10", "-o", "PreferredAuthentications=password,keyboard-interactive",
    "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
)  # fmt: skip
EMPTY_SLOTS = {"none", "emptydrive", ""}


class NoVirtualBox(UserError):
    """This host has no working VBoxManage: the suite cannot run here (exit 2)."""


# ---- argv plans ---------------------------------------------------------------------------------

def _vm(vm: str) -> str:
    if not VM_NAME.match(vm):
        raise ValueError(f"VM name {vm!r} is not a run tag + '-ova'")
    return vm


def _path(p: Path) -> str:
    s = str(p)
    if not SAFE_PATH.match(s) or "/../" in s or s.endswith("/.."):
        raise UserError("path has characters VBoxManage options cannot take safely", file=s)
    return s


def import_argv(tool: str, ova_file: Path, vm: str, basefolder: Path) -> list[str]:
    return [tool, "import", _path(ova_file), "--vsys", "0", "--vmname", _vm(vm), "--basefolder", _path(basefolder)]


def showvminfo_argv(tool: str, vm: str) -> list[str]:
    return [tool, "showvminfo", _vm(vm), "--machinereadable"]


def serial_argv(tool: str, vm: str, log: Path) -> list[str]:
    return [tool, "modifyvm", _vm(vm), "--uart1", "0x3F8", "4", "--uartmode1", "file", _path(log)]


def natpf_argv(tool: str, vm: str, port: int) -> list[str]:
    if not 1024 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return [tool, "modifyvm", _vm(vm), "--natpf1", f"ssh,tcp,127.0.0.1,{port},,22"]


def start_argv(tool: str, vm: str) -> list[str]:
    return [tool, "startvm", _vm(vm), "--type", "headless"]


def poweroff_argv(tool: str, vm: str) -> list[str]:
    return [tool, "controlvm", _vm(vm), "poweroff"]


def unregister_argv(tool: str, vm: str) -> list[str]:
    return [tool, "unregistervm", _vm(vm), "--delete"]


def ssh_argv(user: str, port: int, command: list[str]) -> list[str]:
    """sshpass reads the password from $SSHPASS; the remote command is one shell-quoted string."""
    if not USER.match(user):
        raise UserError(f"{user!r} is not a login name", field="--user")
    return ["sshpass", "-e", "ssh", *SSH_OPTS, "-p", str(port), f"{user}@127.0.0.1", shlex.join(command)]


# ---- what VirtualBox made of the OVA ------------------------------------------------------------

def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return re.sub(r"\\(.)", r"\1", s[1:-1])
    return s


def parse_machinereadable(text: str) -> dict[str, str]:
    """`key="value"` / `"quoted key"="value"` / `key=number` lines; anything else is skipped."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        m = KEY_VALUE.match(line.strip())
        if m:
            info[_unquote(m.group(1))] = _unquote(m.group(2))
    return info


def attached_disks(info: dict[str, str]) -> list[tuple[str, str]]:
    """(slot, medium path) of every medium on a SATA controller, by port then device."""
    found = []
    for key, ctl in info.items():
        n = key.removeprefix("storagecontrollername")
        if n == key or info.get(f"storagecontrollertype{n}") != "IntelAhci":
            continue
        for slot, medium in info.items():
            m = re.fullmatch(re.escape(ctl) + r"-(\d+)-(\d+)", slot)
            if m and medium.lower() not in EMPTY_SLOTS:
                found.append(((int(m.group(1)), int(m.group(2))), slot, medium))
    return [(slot, medium) for _, slot, medium in sorted(found)]


@dataclass(frozen=True)
class Expected:
    cpus: int | None
    memory_mib: int | None
    disks: int
    network: str | None


def expected_from(summary: dict) -> Expected:
    nics = summary.get("nics") or [{}]
    disks = len(summary.get("disks", []))
    return Expected(summary.get("cpus"), summary.get("memory_mib"), disks, nics[0].get("network"))


def compare(expected: Expected, info: dict[str, str], basefolder: Path) -> list[CaseResult]:
    """One case per property VirtualBox must have taken from the descriptor."""
    disks = attached_disks(info)
    inside = [m for _, m in disks if Path(m).is_relative_to(basefolder)]
    listing = "\n".join(f"{s} = {m}" for s, m in disks) or "(no SATA disk)"

    def case(name: str, ok: bool, evidence: str) -> CaseResult:
        return CaseResult(name=name, passed=ok, evidence=evidence)

    return [
        case("cpus", str(expected.cpus) == info.get("cpus"),
             f"OVF {expected.cpus}, VirtualBox cpus={info.get('cpus')}"),
        case("memory", str(expected.memory_mib) == info.get("memory"),
             f"OVF {expected.memory_mib} MiB, VirtualBox memory={info.get('memory')}"),
        case("disks", len(disks) == expected.disks and len(inside) == len(disks),
             f"OVF {expected.disks} disk(s) (system + empty data disks), VirtualBox attached {len(disks)}, "
             f"{len(inside)} inside the basefolder {basefolder}:\n{listing}"),
        # our descriptors say NAT; the SSH port-forward needs it whatever they say
        case("nic1-nat", info.get("nic1") == "nat",
             f"OVF NIC 1 on {expected.network!r}, VirtualBox nic1={info.get('nic1')!r} "
             f"nictype1={info.get('nictype1')!r}"),
    ]


def console_case(info: dict[str, str], log: Path, port: int) -> CaseResult:
    """The serial port and the SSH forward as VirtualBox reports them back after modifyvm."""
    forward = f"ssh,tcp,127.0.0.1,{port},,22"
    forwards = [v for k, v in info.items() if k.startswith("Forwarding(")]
    ok = info.get("uartmode1") == f"file,{log}" and info.get("uart1", "").lower() == "0x03f8,4" and forward in forwards
    return CaseResult(name="serial-and-ssh-forward", passed=ok,
                      evidence=f"uart1={info.get('uart1')!r} uartmode1={info.get('uartmode1')!r} forwarding={forwards}")


@dataclass(frozen=True)
class SshCheck:
    name: str
    argv: tuple[str, ...]
    expect: str | None  # regex over the output
    accept_rc: tuple[int, ...] = (0,)
    # systemctl as a user needs D-Bus, which a minimal image lacks; root talks to systemd directly
    sudo: bool = False

    def remote(self) -> list[str]:
        """The command run over SSH; with sudo the password comes on stdin, never in argv."""
        return ["sudo", "-S", "-p", "", *self.argv] if self.sudo else list(self.argv)


def smoke_checks(name: str, version: str) -> list[SshCheck]:
    return [
        # `--wait` blocks until boot finished; degraded (exit 1) still boots, and the failed units say why
        SshCheck("systemd-state",
                 ("sh", "-c", "systemctl is-system-running --wait; systemctl --failed --no-legend --plain"),
                 r"\A\s*(running|degraded)\b", (0, 1), sudo=True),
        SshCheck("network-up", ("sh", "-c", "ip -4 route show default | grep -q . && ip -br -4 addr show scope global"),
                 None),
        SshCheck("motd-names-version", ("cat", "/etc/motd"), re.escape(f"{name} {version}")),
    ]


def judge(check: SshCheck, rc: int, out: str, seconds: float) -> CaseResult:
    ok = rc in check.accept_rc and (check.expect is None or re.search(check.expect, out, re.MULTILINE) is not None)
    return CaseResult(name=check.name, passed=ok, seconds=round(seconds, 2),
                      evidence=f"$ {shlex.join(check.remote())}\nexit {rc}\n{out.strip()[-2000:]}")


def login_user(spec: ImageSpec) -> User | None:
    """The image user the suite logs in as over SSH: the first with a (lab) password."""
    return next((u for u in spec.users if u.password), None)


def image_version(ova_file: Path, name: str | None, given: str | None) -> str:
    """The version the guest's motd must name: given, or from the published file name `<name>-<version>.ova`."""
    version = given
    if version is None and name and ova_file.name.startswith(f"{name}-") and ova_file.suffix == ".ova":
        version = ova_file.name[len(name) + 1 : -len(".ova")]
    if not version or not VERSION.match(version):
        raise UserError(f"cannot tell the image version from the file name (want {name}-VERSION.ova); "
                        "pass --image-version", file=str(ova_file))
    return version


# ---- apply --------------------------------------------------------------------------------------

def vbox_version(tool: str) -> str:
    """VBoxManage's version, or NoVirtualBox saying why it cannot run here."""
    path = shutil.which(tool)
    if path is None:
        raise NoVirtualBox(f"no {tool} on PATH: the virtualbox suite runs on hosts with VirtualBox "
                           "(runner tag `virtualbox`)")
    try:
        r = proc.run([path, "--version"], timeout=60, check=False, merge_stderr=False)
    except proc.ToolTimeout:
        raise NoVirtualBox(f"`{tool} --version` did not answer within 60 s") from None
    if r.returncode != 0:
        why = (r.stderr or r.output).strip().splitlines()
        raise NoVirtualBox(f"`{tool} --version` exits {r.returncode}: {why[-1] if why else 'no output'}")
    return r.output.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Steps:
    cases: list[CaseResult]

    def tool(self, name: str, argv: list[str], timeout: float, **kw) -> proc.Result:
        """Run one VBoxManage step as a case; a failed step fails the suite right here."""
        t0 = time.monotonic()
        res = proc.run(argv, timeout=timeout, check=False, **kw)
        ok = res.returncode == 0
        self.cases.append(CaseResult(name=name, passed=ok, seconds=round(time.monotonic() - t0, 2),
                                     evidence=f"$ {shlex.join(argv)}\nexit {res.returncode}\n"
                                              f"{res.output.strip()[-3000:]}"))
        if not ok:
            raise _Stop
        return res


class _Stop(Exception):
    """A step failed; its case says why, the remaining steps are skipped, cleanup still runs."""


def _tail(path: Path, size: int) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode("utf-8", "replace")


def _wait_ssh(user: str, port: int, env: dict[str, str], timeout: float, alive) -> CaseResult:
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout:
        if not alive():
            last += "\nthe VM is no longer running"
            break
        try:
            r = proc.run(ssh_argv(user, port, ["uname", "-a"]), env=env, timeout=60, check=False, merge_stderr=False)
        except proc.ToolTimeout:  # sshd accepted but did not finish the login: still booting
            last = "login timed out after 60 s"
            continue
        if r.returncode == 0:
            return CaseResult(name="ssh-answers", passed=True, seconds=round(time.monotonic() - t0, 2),
                              evidence=f"{user}@127.0.0.1:{port} (NAT forward to 22) after "
                                       f"{time.monotonic() - t0:.0f} s: {r.output.strip()}")
        last = (r.stderr or r.output).strip()[-500:]
        time.sleep(3)
    return CaseResult(name="ssh-answers", passed=False, seconds=round(time.monotonic() - t0, 2),
                      evidence=f"no SSH login as {user} on 127.0.0.1:{port} within {timeout:.0f} s; last: {last}")


def run_suite(ova_file: Path, *, user: str = "student", password: str = "student", version: str | None = None,
              tool: str = "VBoxManage", boot_timeout: float = 600, workdir: Path | None = None,
              run: Run | None = None) -> Suite:
    """Import, check, boot and smoke-test the OVA in VirtualBox; everything is gone afterwards."""
    vbox_version(tool)
    tool_path = shutil.which(tool) or tool
    ova_file = ova_file.resolve()
    summary = ova.inspect(ova_file).summary
    version = image_version(ova_file, summary["name"], version)
    if not USER.match(user):
        raise UserError(f"{user!r} is not a login name", field="--user")
    if shutil.which("sshpass") is None:
        raise UserError("sshpass is missing (Debian package sshpass): SSH into an OVA guest needs password login")
    with Run() if run is None else contextlib.nullcontext(run) as r:
        vm = f"{r.tag}-ova"
        base = Path(workdir or tempfile.gettempdir()).resolve() / f"{r.tag}-vbox"
        base_rec = r.record("path", path=str(base))
        base.mkdir(parents=True)
        vm_rec = r.record("virtualbox-vm", name=vm, tool=tool_path)
        steps = _Steps([])
        try:
            _apply(steps, tool_path, ova_file, vm, base, summary, version, user, password, boot_timeout)
        except _Stop:
            pass
        except BuildFailed as e:  # a tool that timed out or a query that failed: a case, then cleanup
            steps.cases.append(CaseResult(name="error", passed=False, evidence=str(e)))
        finally:
            t0 = time.monotonic()
            if steps.cases and steps.cases[-1].name == "unregister-delete" and steps.cases[-1].passed:
                r.keep(vm_rec)  # already gone: nothing to undo
            else:
                r.release(vm_rec)
            r.release(base_rec)
            listed = proc.run([tool_path, "list", "vms"], timeout=60, check=False, merge_stderr=False).output
            left = [w for w, bad in ((f"VM {vm} still registered", f'"{vm}"' in listed),
                                     (f"basefolder {base} still there", base.exists())) if bad]
            steps.cases.append(CaseResult(name="nothing-left", passed=not left, seconds=round(time.monotonic() - t0, 2),
                                          evidence="; ".join(left) or f"{vm} powered off, unregistered and deleted; "
                                                   f"{base} removed"))
    return Suite(passed=all(c.passed for c in steps.cases), cases=steps.cases)


def _apply(steps: _Steps, tool: str, ova_file: Path, vm: str, base: Path, summary: dict, version: str,
           user: str, password: str, boot_timeout: float) -> None:
    steps.tool("import", import_argv(tool, ova_file, vm, base), 1800)
    info = parse_machinereadable(steps.tool("showvminfo", showvminfo_argv(tool, vm), 120).output[:MAX_INFO])
    steps.cases.extend(compare(expected_from(summary), info, base))
    log, port = base / "serial.log", free_port()
    steps.tool("serial-port", serial_argv(tool, vm, log), 120)
    steps.tool("nat-forward", natpf_argv(tool, vm, port), 120)
    info = parse_machinereadable(proc.output(showvminfo_argv(tool, vm), timeout=120)[:MAX_INFO])
    steps.cases.append(console_case(info, log, port))
    steps.tool("start-headless", start_argv(tool, vm), 300)

    def alive() -> bool:
        state = parse_machinereadable(proc.run(showvminfo_argv(tool, vm), timeout=120, check=False).output[:MAX_INFO])
        return state.get("VMState") == "running"

    env = {**os.environ, "SSHPASS": password}
    ssh = _wait_ssh(user, port, env, boot_timeout, alive)
    if not ssh.passed:
        tail = _tail(log, 2000) if log.exists() else "(no serial log)"
        ssh.evidence += f"\nserial console, last lines:\n{tail}"
    steps.cases.append(ssh)
    if ssh.passed:
        for check in smoke_checks(summary["name"], version):
            t0 = time.monotonic()
            try:
                res = proc.run(ssh_argv(user, port, check.remote()), env=env, timeout=330, check=False,
                               stdin_data=f"{password}\n".encode() if check.sudo else b"", merge_stderr=False)
                rc, out = res.returncode, res.output + res.stderr
            except proc.ToolTimeout:
                rc, out = -1, "timed out after 330 s"
            steps.cases.append(judge(check, rc, out, time.monotonic() - t0))
    steps.tool("poweroff", poweroff_argv(tool, vm), 300)
    steps.tool("unregister-delete", unregister_argv(tool, vm), 300)

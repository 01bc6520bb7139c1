"""Shared set-up for runner tests on the real libvirtd of this machine (qemu:///system, TCG).

Each user of `libvirt_place` gets its own NAT network (bridge `bx<hex>`, DHCP) and `dir`
pool, because the `default` network may be absent or inactive on a host; the runner's address
comes from that network's leases. Files live under /var/lib/libvirt/images: qemu runs as
libvirt-qemu and cannot enter pytest's 0700 tmp. Afterwards nothing may remain: domain,
volumes, files, network, pool, bridge.

Import the fixtures into a test module by name (`from tests.integration.runner_fixtures import conn`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.core.runs import Run
from builder.runner import domain
from builder.runner.spec import RunnerSpec
from builder.runner.target import Target

URI = "qemu:///system"


@pytest.fixture(scope="module")
def conn():
    """libvirtd, started here (virtlogd -d; libvirtd -d: no systemd) only if not running."""
    import libvirt

    started = []
    try:
        c = libvirt.open(URI)
    except libvirt.libvirtError:
        for daemon in ("virtlogd", "libvirtd"):
            subprocess.run([daemon, "-d", "--pid-file", f"/run/builder-test-{daemon}.pid"], check=True)
            started.append(Path(f"/run/builder-test-{daemon}.pid"))
        c = libvirt.open(URI)
    yield c
    c.close()
    for pidfile in reversed(started):
        subprocess.run(["kill", pidfile.read_text().strip()], check=False)


def _free_octet() -> int:
    """A 192.168.N.0/24 no interface of this host is on (others' test networks included)."""
    addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout or "[]")
    used = {a["local"].split(".")[2] for i in addrs for a in i.get("addr_info", [])
            if a["local"].startswith("192.168.")}
    return secrets.choice([n for n in range(100, 200) if str(n) not in used])


@contextmanager
def libvirt_place(conn) -> Iterator[dict]:
    """A NAT network and a dir pool of our own; removed afterwards whatever happens, and
    asserted gone (network, pool, bridge, files)."""
    tag = "bx" + secrets.token_hex(3)
    top = Path(tempfile.mkdtemp(prefix=f"{tag}.", dir="/var/lib/libvirt/images"))
    top.chmod(0o755)
    octet = _free_octet()
    net = conn.networkCreateXML(f"""<network><name>{tag}-net</name><forward mode='nat'/>
      <bridge name='{tag}' stp='off'/>
      <ip address='192.168.{octet}.1' netmask='255.255.255.0'>
        <dhcp><range start='192.168.{octet}.10' end='192.168.{octet}.50'/></dhcp></ip></network>""")
    try:
        pool_dir = top / "pool"
        pool_dir.mkdir()
        pool = conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{tag}-pool</name><target><path>{pool_dir}</path></target></pool>", 0)
        try:
            yield {"tag": tag, "network": f"{tag}-net", "pool": f"{tag}-pool", "pool_dir": pool_dir,
                   "top": top, "gateway": f"192.168.{octet}.1"}
        finally:
            pool.destroy()
    finally:
        net.destroy()
        _forget_network_residue(f"{tag}-net")
        shutil.rmtree(top)
    assert f"{tag}-net" not in conn.listNetworks() + conn.listDefinedNetworks()
    assert f"{tag}-pool" not in conn.listStoragePools() + conn.listDefinedStoragePools()
    assert not Path(f"/sys/class/net/{tag}").exists()
    assert not top.exists()
    left = [str(p) for d in ("/run/libvirt", "/var/lib/libvirt", "/etc/libvirt") for p in Path(d).rglob(f"*{tag}*")]
    assert left == [], f"libvirt files of {tag} left: {left}"
    procs = subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout
    assert procs == "", f"processes of {tag} left (qemu, dnsmasq): {procs}"


def _forget_network_residue(name: str) -> None:
    """libvirt 9 leaves a destroyed transient network's empty ports/ directory and its dnsmasq
    pid file in /run/libvirt/network; nothing refers to them any more. rmdir, not rmtree:
    anything more in there would be a real leak and should fail the check."""
    run_dir = Path("/run/libvirt/network")
    for d in (run_dir / name / "ports", run_dir / name):
        if d.is_dir():
            d.rmdir()
    (run_dir / f"{name}.pid").unlink(missing_ok=True)


@pytest.fixture
def place(conn):
    with libvirt_place(conn) as p:
        yield p


def make_spec(place, image: Path, log_dir: Path, key: str) -> RunnerSpec:
    return RunnerSpec.model_validate(dict(
        name=f"{place['tag']}-runner", image=image, cpus=1, memory="1G", disk_size="4G",
        network={"name": place["network"]}, pool=place["pool"], accel="tcg",
        ssh_authorized_keys=[key], tags=["test"], log_dir=log_dir))


def assert_nothing_left(conn, spec, place, log_dir: Path):
    assert spec.name not in [d.name() for d in conn.listAllDomains()]
    pool = conn.storagePoolLookupByName(place["pool"])
    pool.refresh(0)
    assert pool.listVolumes() == []
    assert list(place["pool_dir"].iterdir()) == []
    assert not (log_dir / f"{spec.name}.console.log").exists()


@dataclass(frozen=True)
class RunnerVM:
    spec: RunnerSpec
    address: str
    ssh_config: Path  # identity and a known_hosts of our own: nothing lands in ~/.ssh
    place: dict

    @property
    def login(self) -> str:
        return f"{self.spec.user}@{self.address}"

    @property
    def target(self) -> Target:
        return Target(ssh=self.login, ssh_config=self.ssh_config)


def _until_logged_in(t: Target, timeout: float) -> None:
    """sshd can answer before cloud-init has made the user and installed its key."""
    deadline = time.monotonic() + timeout
    while t.run(["true"], check=False, timeout=60).returncode != 0:
        assert time.monotonic() < deadline, f"no SSH login to {t.ssh} within {timeout:.0f} s"
        time.sleep(3)


@contextmanager
def runner_vm(conn, image: Path, workdir: Path, timeout: float = 600) -> Iterator[RunnerVM]:
    """A runner VM booted from `image` (a project-built qcow2) with SSH login and cloud-init
    done; destroyed afterwards and everything it and its place used asserted gone."""
    with libvirt_place(conn) as place:
        base = place["top"] / image.name  # where libvirt's qemu user can read it
        shutil.copy(image, base)
        key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        ssh_config = workdir / "ssh_config"
        ssh_config.write_text(f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                              f"  UserKnownHostsFile {workdir / 'known_hosts'}\n")
        log_dir = workdir / "log"
        spec = make_spec(place, base, log_dir, key.with_suffix(".pub").read_text().strip())
        try:
            with Run(root=workdir / "runs") as run:
                domain.provision(conn, spec, run, None)
            address = domain.wait_address(conn, spec.name, timeout)
            domain.wait_ssh(address, timeout)
            vm = RunnerVM(spec, address, ssh_config, place)
            _until_logged_in(vm.target, timeout)
            vm.target.run(["cloud-init", "status", "--wait"], check=False, timeout=timeout)
            yield vm
        finally:
            domain.destroy(conn, spec.name)
        assert_nothing_left(conn, spec, place, log_dir)

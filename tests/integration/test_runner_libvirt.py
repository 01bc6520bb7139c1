"""Runner VMs on the real libvirtd of this machine (qemu:///system, TCG).

Networking: each test defines its own NAT libvirt network (named with a unique id, bridge
`bx<hex>`) with DHCP, because the `default` network may be absent or inactive on a host; the
runner's address comes from that network's leases. A `dir` pool in tmp_path holds overlay
and seed. Afterwards nothing may remain: domain, volumes, files, network.
"""

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from builder.runner import domain
from builder.runner.spec import RunnerSpec
from builder.runs import Run

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
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


@pytest.fixture
def place(conn):
    """A NAT network and a dir pool of our own, removed afterwards whatever happens. Files live
    under /var/lib/libvirt/images: qemu runs as libvirt-qemu and cannot enter pytest's 0700 tmp."""
    tag = "bx" + secrets.token_hex(3)
    top = Path(tempfile.mkdtemp(prefix=f"{tag}.", dir="/var/lib/libvirt/images"))
    top.chmod(0o755)
    octet = 100 + secrets.randbelow(100)
    net = conn.networkCreateXML(f"""<network><name>{tag}-net</name><forward mode='nat'/>
      <bridge name='{tag}' stp='off'/>
      <ip address='192.168.{octet}.1' netmask='255.255.255.0'>
        <dhcp><range start='192.168.{octet}.10' end='192.168.{octet}.50'/></dhcp></ip></network>""")
    pool_dir = top / "pool"
    pool_dir.mkdir()
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{tag}-pool</name><target><path>{pool_dir}</path></target></pool>", 0)
    yield {"tag": tag, "network": f"{tag}-net", "pool": f"{tag}-pool", "pool_dir": pool_dir, "top": top}
    pool.destroy()
    net.destroy()
    shutil.rmtree(top)


def make_spec(place, image: Path, tmp_path: Path, key: str) -> RunnerSpec:
    return RunnerSpec.model_validate(dict(
        name=f"{place['tag']}-runner", image=image, cpus=1, memory="1G", disk_size="4G",
        network={"name": place["network"]}, pool=place["pool"], accel="tcg",
        ssh_authorized_keys=[key], tags=["test"], log_dir=tmp_path / "log"))


def assert_nothing_left(conn, spec, place, tmp_path):
    assert spec.name not in [d.name() for d in conn.listAllDomains()]
    pool = conn.storagePoolLookupByName(place["pool"])
    pool.refresh(0)
    assert pool.listVolumes() == []
    assert list(place["pool_dir"].iterdir()) == []
    assert not (tmp_path / "log" / f"{spec.name}.console.log").exists()


def test_provision_and_destroy_on_real_libvirt(conn, place, tmp_path):
    """Define/start/idempotence/destroy with a blank base disk: seconds, no guest OS needed."""
    base = place["top"] / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"], check=True)
    spec = make_spec(place, base, tmp_path, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlank test")
    with Run(root=tmp_path / "runs") as run:
        assert domain.provision(conn, spec, run, None)["created"] is True
        assert domain.provision(conn, spec, run, None)["created"] is False
    dom = conn.lookupByName(spec.name)  # outlives the run that made it
    assert dom.isActive()
    info = subprocess.run(["qemu-img", "info", "-U", str(place["pool_dir"] / f"{spec.name}.qcow2")],
                          capture_output=True, text=True, check=True).stdout
    assert f"backing file: {base}" in info
    assert [r["name"] for r in domain.list_runners(conn)] == [spec.name]
    assert domain.destroy(conn, spec.name)["removed"] is True
    assert_nothing_left(conn, spec, place, tmp_path)


@pytest.mark.slow
def test_runner_vm_boots_and_answers_ssh(conn, place, tmp_path, minimal_qcow2):
    """From an image this project built: provision, lease, SSH in, destroy, nothing left (TCG ~1 min)."""
    base = place["top"] / minimal_qcow2.name  # where libvirt's qemu user can read it
    shutil.copy(minimal_qcow2, base)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = make_spec(place, base, tmp_path, (tmp_path / "id_ed25519.pub").read_text().strip())
    try:
        with Run(root=tmp_path / "runs") as run:
            domain.provision(conn, spec, run, None)
        address = domain.wait_address(conn, spec.name, timeout=600)
        domain.wait_ssh(address, timeout=600)
        out = subprocess.run(
            ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", f"builder@{address}", "hostname; cat /etc/builder/runner.json"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        assert out.splitlines()[0] == spec.name and '"test"' in out
    finally:
        domain.destroy(conn, spec.name)
    assert_nothing_left(conn, spec, place, tmp_path)

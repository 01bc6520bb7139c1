"""Vagrant boxes against Debian's real vagrant + vagrant-libvirt on this machine's libvirtd.

The minimal image's provisioned qcow2 (stage cache) gets the box layer; both boxes and the
catalog are published into a tmp store; then, with a private VAGRANT_HOME and a test Vagrantfile
that runs the box under TCG (driver qemu, CPU model qemu64: the box itself names neither),
`vagrant box add <catalog URL>`, `up`, `ssh -c`, `box outdated` / `box update` after a second
version lands in the catalog, `destroy -f`; afterwards no domain, volume or network of the test
remains. The VirtualBox box is checked for format (members, metadata, OVF against the schema).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from builder import atomic
from builder.core import proc
from builder.core.digests import sha256_file
from builder.spec import load_image
from builder.vagrant import box, catalog
from tests.integration.runner_fixtures import (  # noqa: F401 (conn is a fixture)
    _forget_network_residue,
    _free_octet,
    conn,
    libvirt_place,
)
from tests.repo import IMAGES
from tests.unit.ovf_helpers import schema_path

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (libvirt qemu:///system, QEMU)"),
    pytest.mark.skipif(not shutil.which("vagrant"), reason="Debian's vagrant is not installed (ci/setup.sh)"),
]

TIMES: dict[str, float] = {}


def box_files(vdir: Path) -> dict[str, dict]:
    """{"libvirt.box": {name, sha256}, ...} as the version's manifest lists them."""
    m = json.loads((vdir / "manifest.json").read_text())
    return {f["format"]: {"name": f["name"], "sha256": f["sha256"]} for f in m["files"]
            if f["format"] and f["format"].endswith(".box")}


@pytest.fixture(scope="module")
def store(minimal_release: Path, tmp_path_factory) -> Path:
    """A store of our own holding the version `builder vm minimal` published (boxes included,
    hard-linked) and its catalog; the test adds a second version to it."""
    out = tmp_path_factory.mktemp("store")
    vdir = out / "minimal" / "0.1.0"
    vdir.mkdir(parents=True)
    for p in minimal_release.iterdir():
        atomic.place(p, vdir / p.name)
    publish(out, "minimal", "0.1.0", box_files(vdir))
    return out


def publish(out: Path, name: str, version: str, files: dict, description: str | None = None) -> Path:
    boxes = {k.removesuffix(".box"): (f["name"], f["sha256"]) for k, f in files.items()}
    return catalog.publish_local_catalog(out, name, version, boxes, description)


def test_boxes_have_the_vagrant_layout(store):
    vdir = store / "minimal" / "0.1.0"
    files = box_files(vdir)
    assert sorted(files) == ["libvirt.box", "virtualbox.box"]
    for f in files.values():
        assert sha256_file(vdir / f["name"]) == f["sha256"]

    with tarfile.open(vdir / "minimal-0.1.0.libvirt.box") as tar:
        assert tar.getnames() == ["metadata.json", "Vagrantfile", "box.img"]
        assert json.load(tar.extractfile("metadata.json")) == {"provider": "libvirt", "format": "qcow2",
                                                               "virtual_size": 2}
        # the box's defaults only: no driver, no CPU model (unit-tested on the same template)
        assert tar.extractfile("Vagrantfile").read().decode() == box.vagrantfile(box.plan_for(load_image("minimal", IMAGES)),
                                                                                 "libvirt")

    with tarfile.open(vdir / "minimal-0.1.0.virtualbox.box") as tar:
        assert tar.getnames() == ["metadata.json", "Vagrantfile", "box.ovf", box.VMDK_MEMBER]
        assert json.load(tar.extractfile("metadata.json")) == {"provider": "virtualbox"}
        ovf_bytes = tar.extractfile("box.ovf").read()
        vmdk_size = tar.getmember(box.VMDK_MEMBER).size
        head = tar.extractfile(box.VMDK_MEMBER).read(4)
    (vdir.parent / "box.ovf").write_bytes(ovf_bytes)
    r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", str(schema_path()), str(vdir.parent / "box.ovf")],
                       capture_output=True, text=True)
    (vdir.parent / "box.ovf").unlink()
    assert r.returncode == 0, r.stderr
    assert f'ovf:href="{box.VMDK_MEMBER}" ovf:id="file1" ovf:size="{vmdk_size}"'.encode() in ovf_bytes
    assert head == b"KDMV"


def vagrant(argv: list[str], env: dict, cwd: Path, timeout: float = 900, check: bool = True) -> str:
    """vagrant in its own process group, killed whole on timeout (builder.core.proc)."""
    r = proc.run(["vagrant", *argv], env=env, cwd=cwd, timeout=timeout, check=False)
    if check:
        assert r.returncode == 0, f"vagrant {' '.join(argv)} failed (exit {r.returncode}):\n{r.output[-3000:]}"
    return r.output


TEST_VAGRANTFILE = """\
# The test's own settings: TCG (this host has no usable KVM) and a CPU model TCG runs. The box
# carries neither.
Vagrant.configure("2") do |config|
  config.vm.box = "minimal"
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.boot_timeout = 900
  config.vm.provider :libvirt do |libvirt|
    libvirt.uri = "qemu:///system"
    libvirt.driver = "qemu"
    libvirt.cpu_mode = "custom"
    libvirt.cpu_model = "qemu64"
    libvirt.graphics_type = "none"
    libvirt.default_prefix = "{tag}-"
    libvirt.storage_pool_name = "{pool}"
    libvirt.management_network_name = "{tag}-mgmt"
    libvirt.management_network_address = "192.168.{octet}.0/24"
  end
end
"""


def leftovers(conn, tag: str, pool: str) -> dict[str, list[str]]:
    """What vagrant made for this test: domain `<tag>-default`, network `<tag>-mgmt`, pool volumes
    (the pool and its `<tag>-net` network belong to libvirt_place, which checks them itself)."""
    p = conn.storagePoolLookupByName(pool)
    p.refresh(0)
    return {"domains": [d.name() for d in conn.listAllDomains() if d.name().startswith(tag)],
            "networks": [n.name() for n in conn.listAllNetworks() if n.name() == f"{tag}-mgmt"],
            "volumes": p.listVolumes()}


def force_clean(conn, tag: str, pool: str) -> None:
    """After a failure: whatever vagrant left of this test, by name."""
    import libvirt

    for d in conn.listAllDomains():
        if d.name().startswith(tag):
            if d.isActive():
                d.destroy()
            d.undefine()
    for n in conn.listAllNetworks():
        if n.name() == f"{tag}-mgmt":
            if n.isActive():
                n.destroy()
            try:
                n.undefine()
            except libvirt.libvirtError:
                pass  # transient: gone with destroy
    p = conn.storagePoolLookupByName(pool)
    p.refresh(0)
    for v in p.listAllVolumes():
        v.delete(0)


def test_vagrant_box_add_up_ssh_outdated_destroy(store, conn, tmp_path):
    cat_url = catalog.catalog_path(store, "minimal").resolve().as_uri()
    home, project = tmp_path / "vagrant.d", tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1",
           "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_NO_COLOR": "1"}
    t_all = time.monotonic()
    with libvirt_place(conn) as place:
        tag, pool = place["tag"], place["pool"]
        (project / "Vagrantfile").write_text(TEST_VAGRANTFILE.format(tag=tag, pool=pool, octet=_free_octet()))
        try:
            # vagrant checks each box against the catalog's sha256 and its metadata.json provider
            for provider in box.PROVIDERS:
                vagrant(["box", "add", cat_url, "--provider", provider], env, project, timeout=600)
            listed = vagrant(["box", "list"], env, project)
            assert "minimal (libvirt, 0.1.0)" in listed and "minimal (virtualbox, 0.1.0)" in listed, listed

            t0 = time.monotonic()
            vagrant(["up", "--provider", "libvirt"], env, project, timeout=1200)
            TIMES["vagrant up (TCG)"] = time.monotonic() - t0
            out = vagrant(["ssh", "-c", "id vagrant && sudo -n true && echo SUDO-OK && id student"], env, project,
                          timeout=300)
            assert "uid=" in out and "SUDO-OK" in out and "(student)" in out  # the image's own user stays

            # a second version lands in the catalog (same bytes, new name: only the catalog matters)
            v1, v2 = store / "minimal" / "0.1.0", store / "minimal" / "0.2.0"
            v2.mkdir()
            files = box_files(v1)
            for f in files.values():
                f["name"] = f["name"].replace("0.1.0", "0.2.0")
                atomic.place(v1 / f["name"].replace("0.2.0", "0.1.0"), v2 / f["name"])
            publish(store, "minimal", "0.2.0", files)
            # --force: `up` has just checked, and without it Vagrant skips a check made within the hour
            out = vagrant(["box", "outdated", "--force"], env, project, timeout=300)
            assert "newer version" in out and "0.2.0" in out, out
            vagrant(["box", "update"], env, project, timeout=600)
            assert "minimal (libvirt, 0.2.0)" in vagrant(["box", "list"], env, project)

            t0 = time.monotonic()
            vagrant(["destroy", "-f"], env, project, timeout=600)
            TIMES["vagrant destroy"] = time.monotonic() - t0
            left = leftovers(conn, tag, pool)
            assert left["domains"] == [] and left["networks"] == [], left
            # vagrant-libvirt keeps a box's base image in the pool for the next `up`
            # (`vagrant box remove` says to delete it by hand): nothing else may remain
            assert all("_vagrant_box_image_" in v for v in left["volumes"]), left
            for provider in box.PROVIDERS:
                vagrant(["box", "remove", "minimal", "--provider", provider, "--all", "--force"], env, project,
                        timeout=300)
            assert "There are no installed boxes" in vagrant(["box", "list"], env, project)
            assert list((home / "boxes").iterdir()) == []
        finally:
            vagrant(["destroy", "-f"], env, project, timeout=600, check=False)
            force_clean(conn, tag, pool)
            _forget_network_residue(f"{tag}-mgmt")  # libvirt 9's leftovers of any destroyed network
        assert leftovers(conn, tag, pool) == {"domains": [], "networks": [], "volumes": []}
    TIMES["vagrant test (box add .. destroy, cleanup)"] = time.monotonic() - t_all
    print("\n" + "\n".join(f"  {k}: {v:.1f} s" for k, v in TIMES.items() if k.startswith("vagrant")))

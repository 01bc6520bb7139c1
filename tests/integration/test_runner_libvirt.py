"""Runner VMs on the real libvirtd of this machine (qemu:///system, TCG): define, start,
idempotence and destroy with a blank disk. Booting a real image and working on it over SSH is
in test_runner_over_ssh.py."""

import subprocess

import pytest

from builder.core.runs import Run
from builder.runner import domain
from tests.integration.runner_fixtures import assert_nothing_left, conn, make_spec, place  # noqa: F401

pytestmark = pytest.mark.root


def test_provision_and_destroy_on_real_libvirt(conn, place, tmp_path):
    """Define/start/idempotence/destroy with a blank base disk: seconds, no guest OS needed."""
    base = place["top"] / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"], check=True)
    spec = make_spec(place, base, tmp_path / "log", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlank test")
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
    assert_nothing_left(conn, spec, place, tmp_path / "log")

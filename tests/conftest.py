"""Shared fixtures: the host leak check and the one real `builder vm minimal` run per session."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from builder.core import runs

REPO = Path(__file__).resolve().parent.parent


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`root` tests (namespaces, loop devices, tgtd, libvirt) skip with a reason when unprivileged."""
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, loop devices, tgtd, QEMU taps, libvirt")


TOOLS = ("qemu-system-x86_64", "tgtd", "packer", "radvd", "mmdebstrap", "netns exec bx")


def host_snapshot() -> dict[str, set[str]]:
    """Everything a run may create on the host, by name (zombies count as gone)."""
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]")
    ps = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout.splitlines()
    netns = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]")
    mounts = Path("/proc/self/mounts").read_text()
    root = runs.RUN_ROOT
    return {
        "netns": {ns["name"] for ns in netns},
        "links": {link["ifname"] for link in links},
        # by pid and command line: the state column (R, S, l...) of a running QEMU changes between
        # two snapshots, and made a process that ran all along look new
        "processes": {f"{pid} {args}" for pid, stat, args in (p.split(None, 2) for p in ps)
                      if stat[0] != "Z" and any(t in args for t in TOOLS)},
        "runs": {p.name for p in root.iterdir()} if root.is_dir() else set(),
        "mounts": {line.split()[1] for line in mounts.splitlines() if "/run/builder" in line},
        "loops": set(subprocess.run(["losetup", "-n", "-O", "NAME,BACK-FILE"], capture_output=True,
                                    text=True).stdout.split("\n")) - {""},
    }


@pytest.fixture
def no_leaks():
    """Assert a test leaves no namespace, link, process, mount, loop device or run journal behind."""
    before = host_snapshot()
    yield
    for _ in range(40):  # a killed process's exit can trail its parent by a moment
        after = host_snapshot()
        leaked = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
        if not leaked:
            break
        time.sleep(0.05)
    assert not leaked, f"host objects leaked: {leaked}"


@pytest.fixture(scope="session")
def test_cache() -> Path:
    """The stage cache the real builds use; BUILDER_TEST_CACHE points it elsewhere."""
    return Path(os.environ.get("BUILDER_TEST_CACHE", Path.home() / ".cache" / "builder"))


def _published(tmp_path_factory, test_cache: Path, name: str, version: str) -> Path:
    from builder.cli import main

    out = tmp_path_factory.mktemp("artifacts")
    rc = main(["vm", name, "--output", str(out), "--cache-dir", str(test_cache), "--quiet"])
    assert rc == 0, f"builder vm {name} failed"
    return out / name / version


@pytest.fixture(scope="session")
def minimal_release(tmp_path_factory, test_cache) -> Path:
    """One full `builder vm minimal` (build, boot test, fabric, export, publish) per session."""
    return _published(tmp_path_factory, test_cache, "minimal", "0.1.0")


@pytest.fixture(scope="session")
def ceph_release(tmp_path_factory, test_cache) -> Path:
    """`builder vm ceph-training` once per session; stage hits when the end-to-end test built it."""
    return _published(tmp_path_factory, test_cache, "ceph-training", "1.0.0")


@pytest.fixture(scope="session")
def minimal_qcow2(minimal_release) -> Path:
    """A provisioned, tested minimal image: cloud-init, sshd, qemu-guest-agent, networkd DHCP."""
    return minimal_release / "minimal-0.1.0.qcow2"

"""Runner VMs as libvirt domains: plan (domain + volume XML) apart from apply (libvirt-python).

A runner owns three host objects, all named after it and listed in the domain's metadata so
`destroy` and `list` need nothing but the domain: a qcow2 overlay on the base image and the
cloud-init seed ISO (both in a `dir` storage pool), and the serial console log.
"""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from .. import templates
from ..core.errors import BuildFailed, UserError
from ..core.runs import Run
from . import seed
from .spec import RunnerSpec

if TYPE_CHECKING:
    import libvirt  # imported at run time only where used: a host without it still plans

NS = "http://builder.invalid/xmlns/runner/1"


@dataclass(frozen=True)
class Layout:
    overlay: Path
    seed: Path
    console: Path

    @classmethod
    def of(cls, spec: RunnerSpec, pool_dir: Path) -> Layout:
        return cls(
            overlay=pool_dir / f"{spec.name}.qcow2",
            seed=pool_dir / f"{spec.name}-seed.iso",
            console=spec.log_dir / f"{spec.name}.console.log",
        )


def domain_xml(spec: RunnerSpec, layout: Layout, virt_flag: str | None) -> str:
    """virt_flag ('vmx'/'svm') means KVM with nested virtualisation; None means TCG."""
    return templates.render(
        "runner/domain.xml.j2", spec=spec, ns=NS, virt_flag=virt_flag,
        overlay=layout.overlay, seed=layout.seed, console_log=layout.console,
    )


def overlay_xml(spec: RunnerSpec, layout: Layout) -> str:
    return templates.render(
        "runner/overlay-volume.xml.j2", vol_name=layout.overlay.name, base=spec.image,
        capacity_mib=spec.disk_mib,
    )


def runner_metadata(xml: str) -> dict | None:
    """Our metadata from a domain's XML, or None for a domain builder did not make."""
    node = etree.fromstring(xml.encode()).find(f"metadata/{{{NS}}}runner")
    if node is None:
        return None
    return {c.tag: (c.text or "") for c in node}


# ---- apply ------------------------------------------------------------------------------


def _libvirt():
    import libvirt

    # libvirt prints every error to stderr by default; ours become one clear line instead
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def connect(uri: str):
    libvirt = _libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        msg = str(e)
        if "No such file" in msg or "Connection refused" in msg:
            raise BuildFailed(f"libvirtd is not running at {uri} (start it: `virtlogd -d; libvirtd -d`)") from None
        if "ermission denied" in msg or "authentication" in msg.lower():
            raise BuildFailed(f"permission denied on {uri}: run as root or join the libvirt group") from None
        raise BuildFailed(f"cannot connect to {uri}: {msg}") from None


@contextmanager
def connection(uri: str):
    conn = connect(uri)
    try:
        yield conn
    finally:
        conn.close()


def _pool_dir(conn, name: str) -> tuple[libvirt.virStoragePool, Path]:
    libvirt = _libvirt()
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        raise UserError(
            f"libvirt storage pool {name!r} not found (define one: virsh pool-define-as {name} dir "
            f"--target /var/lib/libvirt/images && virsh pool-start {name})", field="pool",
        ) from None
    xml = etree.fromstring(pool.XMLDesc().encode())
    if xml.get("type") != "dir":
        raise UserError(f"storage pool {name!r} is of type {xml.get('type')}, need a 'dir' pool", field="pool")
    if not pool.isActive():
        pool.create()
    return pool, Path(xml.findtext("target/path"))


def _check_network(conn, name: str) -> None:
    libvirt = _libvirt()
    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        raise UserError(f"libvirt network {name!r} not found (virsh net-list --all)", field="network.name") from None
    if not net.isActive():
        raise UserError(f"libvirt network {name!r} is not active (virsh net-start {name})", field="network.name")


def _lookup(conn, name: str):
    libvirt = _libvirt()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _volume(pool, name: str):
    libvirt = _libvirt()
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return None


def provision(conn, spec: RunnerSpec, run: Run, virt_flag: str | None) -> dict:
    """Create (or find) the runner's domain and start it. Idempotent: a second call finds the
    domain builder made and only starts it if stopped; the overlay is never recreated."""
    try:
        dom = _lookup(conn, spec.name)
        if dom is not None:
            if runner_metadata(dom.XMLDesc()) is None:
                raise UserError(f"a libvirt domain named {spec.name!r} exists and was not made by builder",
                                field="name")
            if not dom.isActive():
                dom.create()
            return {"name": spec.name, "created": False}
        if not spec.image.is_file():
            raise UserError(f"base image {spec.image} not found", field="image")
        pool, pool_dir = _pool_dir(conn, spec.pool)
        _check_network(conn, spec.network.name)
        layout = Layout.of(spec, pool_dir)
        layout.console.parent.mkdir(parents=True, exist_ok=True)

        # journal first: a failure or signal before the end undoes everything made so far
        undo = [run.record("path", path=str(layout.console))]
        if _volume(pool, layout.overlay.name) is None:
            undo.append(run.record("path", path=str(layout.overlay)))
            pool.createXML(overlay_xml(spec, layout), 0)
        undo.append(run.record("path", path=str(layout.seed)))
        seed.build_iso(seed.seed_files(spec), layout.seed, run)
        pool.refresh(0)
        undo.append(run.record("libvirt-domain", name=spec.name, uri=conn.getURI()))
        dom = conn.defineXML(domain_xml(spec, layout, virt_flag))
        dom.create()
        for rec in undo:
            run.keep(rec)  # provisioned: the runner outlives this command
        return {"name": spec.name, "created": True}
    except _libvirt().libvirtError as e:
        raise BuildFailed(f"libvirt: {e}") from None


def list_runners(conn) -> list[dict]:
    out = []
    for dom in conn.listAllDomains():
        meta = runner_metadata(dom.XMLDesc())
        if meta is not None:
            out.append({"name": dom.name(), "active": bool(dom.isActive()),
                        "tags": [t for t in meta.get("tags", "").split(",") if t]})
    return sorted(out, key=lambda r: r["name"])


def destroy(conn, name: str) -> dict:
    """Remove the domain, its overlay and seed volumes and its console log. Idempotent."""
    libvirt = _libvirt()
    dom = _lookup(conn, name)
    if dom is None:
        return {"name": name, "removed": False}
    meta = runner_metadata(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if meta is None:
        raise UserError(f"domain {name!r} was not made by builder; not touching it", field="NAME")
    if dom.isActive():
        dom.destroy()
    dom.undefine()
    for key in ("overlay", "seed"):
        path = meta[key]
        # not a known volume (pool gone or never refreshed): the file goes below
        with suppress(libvirt.libvirtError):
            conn.storageVolLookupByPath(path).delete(0)
        Path(path).unlink(missing_ok=True)
    Path(meta["console"]).unlink(missing_ok=True)
    return {"name": name, "removed": True}


def wait_address(conn, name: str, timeout: float) -> str:
    """First IPv4 address of the domain, from the network's DHCP leases or the guest agent."""
    libvirt = _libvirt()
    sources = (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT)
    dom = conn.lookupByName(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for src in sources:
            try:
                ifaces = dom.interfaceAddresses(src, 0)
            except libvirt.libvirtError:
                continue  # agent not up yet
            for iface in ifaces.values():
                for a in iface.get("addrs") or ():
                    if a["type"] == libvirt.VIR_IP_ADDR_TYPE_IPV4 and not a["addr"].startswith("127."):
                        return a["addr"]
        time.sleep(2)
    raise BuildFailed(f"runner {name} got no address within {timeout:.0f} s")


def wait_ssh(address: str, timeout: float, port: int = 22) -> None:
    """Until sshd answers with its banner (a TCP accept alone can come from a half-up guest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=5) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(2)
    raise BuildFailed(f"no SSH on {address}:{port} within {timeout:.0f} s")


def virt_flag_for(accel: str, cpu_flag: str | None, kvm_usable) -> str | None:
    """Which CPU flag to require (nested KVM) or None for TCG. kvm_usable is only called for
    'auto': it boots a guest, because /dev/kvm existing proves nothing (docs/design.md §6)."""
    if accel == "tcg":
        return None
    if accel == "kvm":
        if cpu_flag is None:
            raise UserError("accel kvm, but the host CPU shows neither vmx nor svm", field="accel")
        return cpu_flag
    return cpu_flag if cpu_flag and kvm_usable() else None

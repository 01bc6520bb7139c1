"""Read any OVF 1.x / 2.0 descriptor or OVA package: ours and VirtualBox 4.3-7.x exports.

Namespaces differ between OVF 1 and 2 and between exporters, so elements are matched by local name.
The manifest, when there is one, is checked digest by digest before anything is reported.

OVAs come from anywhere (a colleague's VirtualBox, a download), so reading one is bounded: only
plain (uncompressed) tar, at most MAX_MEMBERS members, the descriptor and manifest read up to a
cap, disks only hashed in chunks, every member and the end-of-archive marker inside the file
(a truncated package fails), and every number range-checked before any arithmetic on it.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from ..core.digests import hash_stream
from ..core.errors import BuildFailed, UserError

OVF_NS_PREFIX = "http://schemas.dmtf.org/ovf/envelope/"
DIGEST_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$")
# rasd:ResourceType values (CIM_ResourceAllocationSettingData)
CPU, MEMORY, ETHERNET, HARD_DISK = 3, 4, 10, 17
# prefixes of rasd:HostResource naming a DiskSection disk, as VirtualBox's reader accepts them
DISK_REFS = ("ovf://disk/", "ovf:/disk/", "/disk/")
UNIT_WORDS = {
    "byte": 1, "bytes": 1,
    "kilobytes": 1 << 10, "kb": 1 << 10,
    "megabytes": 1 << 20, "mb": 1 << 20,
    "gigabytes": 1 << 30, "gb": 1 << 30,
    "terabytes": 1 << 40, "tb": 1 << 40,
}  # fmt: skip
PROGRAMMATIC_UNIT = re.compile(r"^byte\s*(?:\*\s*(\d{1,6})\s*(?:\^\s*(\d{1,3}))?)?$")
MAX_UNIT = 1 << 50  # PiB: more per allocation unit is not a real descriptor
MAX_BYTES = 1 << 60  # any capacity or memory size beyond an exbibyte is nonsense
MAX_CPUS = 4096
MAX_DESCRIPTOR = 16 << 20
MAX_MANIFEST = 1 << 20
MAX_MEMBERS = 1000
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


@dataclass
class Inspection:
    summary: dict
    verified: list[str] = field(default_factory=list)  # files whose manifest digest matched


def unit_bytes(units: str) -> int:
    """Bytes in one unit: `MegaBytes`, `GB`, DSP0004 programmatic units like `byte * 2^20`."""
    text = units.strip()
    if text.lower() in UNIT_WORDS:
        return UNIT_WORDS[text.lower()]
    m = PROGRAMMATIC_UNIT.match(text)
    if not m:
        raise ValueError(f"unknown allocation units {units!r}")
    base, exp = int(m.group(1) or 1), int(m.group(2) or 1)
    # base**exp on `byte * 10^300` is huge: bound it by bit lengths before computing it
    if base == 0 or exp * (base.bit_length() - 1) > MAX_UNIT.bit_length() or base**exp > MAX_UNIT:
        raise ValueError(f"allocation units {units!r} are not 1..{MAX_UNIT} bytes")
    return base**exp


def _local(el) -> str:
    return etree.QName(el).localname


def _kids(el, name: str) -> list:
    return [c for c in el if isinstance(c.tag, str) and _local(c) == name]


def _kid(el, name: str):
    found = _kids(el, name)
    return found[0] if found else None


def _text(el, name: str) -> str | None:
    k = _kid(el, name)
    return k.text.strip() if k is not None and k.text else None


class _Descriptor:
    """One parsed envelope; `where` names the file in every error."""

    def __init__(self, data: bytes, where: str):
        self.where = where
        try:
            root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as e:
            raise UserError(f"not XML: {e}", file=where) from None
        ns = etree.QName(root).namespace or ""
        if _local(root) != "Envelope" or not ns.startswith(OVF_NS_PREFIX):
            raise UserError(f"not an OVF envelope (root element {root.tag})", file=where)
        self.root, self.ns = root, ns
        self.vs = next((e for e in root.iter() if isinstance(e.tag, str) and _local(e) == "VirtualSystem"), None)
        if self.vs is None:
            raise UserError("no VirtualSystem in the descriptor", file=where)

    def attr(self, el, name: str) -> str | None:
        """An OVF attribute, written `ovf:name` by most exporters and bare by a few."""
        return el.get(f"{{{self.ns}}}{name}", el.get(name))

    def references(self) -> dict[str | None, str | None]:
        """File id -> href; either may be missing in a hostile descriptor."""
        refs = _kid(self.root, "References")
        files = _kids(refs, "File") if refs is not None else []
        return {self.attr(f, "id"): self.attr(f, "href") for f in files}

    def _int(self, value: str | None, what: str, low: int = 0, high: int = MAX_BYTES) -> int | None:
        if value is None:
            return None
        try:
            n = int(value) if len(value) <= 30 else None
        except ValueError:
            n = None
        if n is None:
            raise UserError(f"{value[:40]!r} is not a number", file=self.where, field=what) from None
        if not low <= n <= high:
            raise UserError(f"{n} is outside {low}..{high}", file=self.where, field=what)
        return n

    def _bytes(self, quantity: int, per_unit: int, what: str) -> int:
        if quantity * per_unit > MAX_BYTES:
            raise UserError(f"{quantity} x {per_unit} bytes is beyond {MAX_BYTES} bytes", file=self.where, field=what)
        return quantity * per_unit

    def _os(self) -> str | None:
        sec = _kid(self.vs, "OperatingSystemSection")
        machine = _kid(self.vs, "Machine")
        if sec is not None:
            vbox = next((c for c in sec if isinstance(c.tag, str) and _local(c) == "OSType"), None)
            if vbox is not None and vbox.text:
                return vbox.text.strip()
        if machine is not None and machine.get("OSType"):
            return machine.get("OSType")
        if sec is None:
            return None
        return _text(sec, "Description") or f"CIM OS {self.attr(sec, 'id')}"

    def _items(self) -> list[dict[str, str]]:
        hw = _kid(self.vs, "VirtualHardwareSection")
        if hw is None:
            return []
        items = []
        for item in hw:
            if not isinstance(item.tag, str) or _local(item) not in ("Item", "StorageItem", "EthernetPortItem"):
                continue
            fields: dict[str, str] = {}
            for c in item:
                if isinstance(c.tag, str):
                    fields.setdefault(_local(c), (c.text or "").strip())
            items.append(fields)
        return items

    def _disk(self, host_resource: str, files: dict[str | None, str | None]) -> dict:
        section = _kid(self.root, "DiskSection")
        disks = {self.attr(d, "diskId"): d for d in (_kids(section, "Disk") if section is not None else [])}
        prefix = next((p for p in DISK_REFS if host_resource.startswith(p)), None)
        disk = disks.get(host_resource[len(prefix):]) if prefix else None
        if disk is None:
            raise UserError(f"HostResource {host_resource!r} names no Disk in DiskSection", file=self.where)
        units = self.attr(disk, "capacityAllocationUnits") or "byte"
        try:
            per_unit = unit_bytes(units)
        except ValueError as e:
            raise UserError(str(e), file=self.where, field="Disk/@capacityAllocationUnits") from None
        capacity = self._int(self.attr(disk, "capacity"), "Disk/@capacity")
        return {
            # no fileRef (other exporters): an empty disk the importer creates (VirtualBox makes it dynamic)
            "file": files.get(self.attr(disk, "fileRef")),
            "capacity_bytes": None if capacity is None else self._bytes(capacity, per_unit, "Disk/@capacity"),
            "format": self.attr(disk, "format"),
        }

    def summary(self) -> dict:
        files = self.references()
        name, guest_os = self.attr(self.vs, "id") or _text(self.vs, "Name"), self._os()
        cpus: int | None = None
        memory_mib: int | None = None
        disks: list[dict] = []
        nics: list[dict] = []
        for item in self._items():
            kind = self._int(item.get("ResourceType"), "Item/ResourceType", 0, 1 << 16)
            if kind == CPU:
                cpus = self._int(item.get("VirtualQuantity"), "Item/VirtualQuantity", 1, MAX_CPUS)
            elif kind == MEMORY:
                # no units at all: MegaBytes, the unit every exporter we know writes
                units = item.get("AllocationUnits") or "MegaBytes"
                try:
                    per_unit = unit_bytes(units)
                except ValueError as e:
                    raise UserError(str(e), file=self.where, field="Item/AllocationUnits") from None
                quantity = self._int(item.get("VirtualQuantity"), "Item/VirtualQuantity", 1) or 0
                memory_mib = self._bytes(quantity, per_unit, "Item/VirtualQuantity") // (1 << 20)
            elif kind == HARD_DISK and item.get("HostResource"):
                disks.append(self._disk(item["HostResource"], files))
            elif kind == ETHERNET:
                nics.append({"network": item.get("Connection"), "model": item.get("ResourceSubType")})
        return {"name": name, "os": guest_os, "cpus": cpus, "memory_mib": memory_mib, "disks": disks, "nics": nics}


def read_capped(f: IO[bytes], cap: int, where: str) -> bytes:
    data = f.read(cap + 1)
    if len(data) > cap:
        raise UserError(f"larger than {cap} bytes", file=where)
    return data


def decode_manifest(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 text (byte {e.start})", file=where) from None


def parse_manifest(text: str, where: str) -> list[tuple[str, str, str]]:
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = DIGEST_LINE.match(line.strip())
        if not m:
            raise UserError("not a manifest line like `SHA256(file)= hex`", file=where, field=f"line {n}")
        entries.append((m.group(1), m.group(2), m.group(3).lower()))
    return entries


def verify_manifest(entries, open_member: Callable[[str], IO[bytes] | None], where: str) -> list[str]:
    verified = []
    for algo, name, expected in entries:
        f = open_member(name)
        if f is None:
            raise BuildFailed(f"{where}: {name} is listed in the manifest but missing from the package")
        with f:
            actual = hash_stream(f, algo)
        if actual != expected:
            raise BuildFailed(f"{where}: {algo} digest mismatch for {name}: manifest {expected}, file {actual}")
        verified.append(name)
    return verified


def _members(tar: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    """Regular members by name, each inside the file, and the end-of-archive marker after them:
    tarfile stops quietly at a truncated header, which would pass a package cut before its .mf."""
    size = path.stat().st_size
    members = {}
    for n, m in enumerate(tar, 1):
        if n > MAX_MEMBERS:
            raise UserError(f"more than {MAX_MEMBERS} members: not an OVA", file=str(path))
        if m.offset_data + m.size > size:
            raise BuildFailed(f"{path}: damaged archive: {m.name} is truncated")
        if m.isfile():
            members[m.name.removeprefix("./")] = m
    tar.fileobj.seek(tar.offset)
    if tar.fileobj.read(1024) != bytes(1024):
        raise BuildFailed(f"{path}: damaged archive: truncated after {len(members)} members (no end-of-archive marker)")
    return members


def _inspect_ova(path: Path) -> Inspection:
    with open(path, "rb") as f:
        magic = f.read(6)
    kind = next((k for m, k in COMPRESSED.items() if magic.startswith(m)), None)
    if kind:
        raise UserError(f"a {kind}-compressed archive: an OVA is a plain tar (decompress it first)", file=str(path))
    try:
        with tarfile.open(path, "r:") as tar:
            members = _members(tar, path)

            def open_member(name: str):
                m = members.get(name)
                return tar.extractfile(m) if m is not None else None

            ovf = next((n for n in members if n.lower().endswith(".ovf")), None)
            if ovf is None:
                raise UserError("no .ovf descriptor in the archive", file=str(path))
            desc = _Descriptor(read_capped(open_member(ovf), MAX_DESCRIPTOR, f"{path}:{ovf}"), f"{path}:{ovf}")
            summary = desc.summary()
            for href in desc.references().values():
                if href not in members:
                    raise BuildFailed(f"{path}: {href}, referenced by {ovf}, is missing from the archive")
            mf = next((n for n in members if n.lower().endswith(".mf")), None)
            verified = []
            if mf is not None:
                where = f"{path}:{mf}"
                text = decode_manifest(read_capped(open_member(mf), MAX_MANIFEST, where), where)
                verified = verify_manifest(parse_manifest(text, where), open_member, where)
    except (tarfile.TarError, EOFError) as e:
        raise BuildFailed(f"{path}: damaged archive: {e}") from None
    return Inspection(summary, verified)


def _inspect_ovf(path: Path) -> Inspection:
    """A bare descriptor; a sibling `<stem>.mf` (VirtualBox's OVF export) is checked against its neighbours."""
    with open(path, "rb") as f:
        summary = _Descriptor(read_capped(f, MAX_DESCRIPTOR, str(path)), str(path)).summary()
    mf = path.with_suffix(".mf")
    if not mf.is_file():
        return Inspection(summary)

    def open_member(name: str):
        p = path.parent / name
        return open(p, "rb") if "/" not in name and p.is_file() else None

    with open(mf, "rb") as f:
        text = decode_manifest(read_capped(f, MAX_MANIFEST, str(mf)), str(mf))
    return Inspection(summary, verify_manifest(parse_manifest(text, str(mf)), open_member, str(mf)))


def inspect(path: Path) -> Inspection:
    """Summary of the first VirtualSystem; exit 1 (BuildFailed) for a damaged package, 2 for non-OVF input."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", file=str(path))
    if tarfile.is_tarfile(path):
        return _inspect_ova(path)
    if path.suffix.lower() == ".ova":
        raise UserError("not a tar archive (an OVA is a tar of descriptor, disks and manifest)", file=str(path))
    return _inspect_ovf(path)

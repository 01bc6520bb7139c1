"""Build extension-pack tarballs with the layout of Oracle's (VirtualBox ExtPackUtil.cpp):
a gzip'd tar of ./ExtPack.xml, ./ExtPack-license.{txt,html,rtf}, ./ExtPack.signature,
./ExtPack.manifest (checksums of the others) and per-platform module directories."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

NAME_70 = "Oracle VM VirtualBox Extension Pack"
NAME_71 = "Oracle VirtualBox Extension Pack"
LICENSE = "VirtualBox Extension Pack Personal Use and Evaluation License (PUEL)\n\nLicense version 10, 20 July 2020\n"


def extpack_xml(name: str, version: str, revision: int) -> str:
    return f"""<?xml version="1.0"?>
<VirtualBoxExtensionPack xmlns="http://www.virtualbox.org/VirtualBoxExtensionPack" version="1.0">
  <Name>{name}</Name>
  <Description>Oracle Cloud Infrastructure integration, Host Webcam, VirtualBox RDP, PXE ROM, Disk Encryption, NVMe.</Description>
  <Version revision="{revision}">{version}</Version>
  <MainModule>VBoxPuelMain</MainModule>
  <VRDEModule>VBoxVRDP</VRDEModule>
  <CryptoModule>VBoxPuelCrypto</CryptoModule>
  <ShowLicense/>
</VirtualBoxExtensionPack>
"""


def build(path: Path, *, version: str, revision: int, name: str | None = None, license: str = LICENSE) -> Path:
    if name is None:
        major, minor = (int(x) for x in version.split(".")[:2])
        name = NAME_70 if (major, minor) < (7, 1) else NAME_71
    files = {
        "ExtPack.xml": extpack_xml(name, version, revision).encode(),
        "ExtPack-license.txt": license.encode(),
        "ExtPack-license.html": f"<html><body><pre>{license}</pre></body></html>".encode(),
        "ExtPack-license.rtf": ("{\\rtf1\\ansi " + license.replace("\n", "\\par ") + "}").encode(),
        "linux.amd64/VBoxPuelMain.so": b"\x7fELF fake",
        "linux.amd64/VBoxVRDP.so": b"\x7fELF fake",
        "linux.amd64/VBoxPuelCrypto.so": b"\x7fELF fake",
    }
    manifest = "".join(f"SHA256 ({n}) = {hashlib.sha256(b).hexdigest()}\n" for n, b in sorted(files.items()))
    files["ExtPack.manifest"] = manifest.encode()
    files["ExtPack.signature"] = b"placeholder"  # the stand-in does not check it
    with tarfile.open(path, "w:gz", format=tarfile.USTAR_FORMAT) as tar:
        dirs = {"./linux.amd64"}
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for n, b in files.items():
            info = tarfile.TarInfo(f"./{n}")
            info.size, info.mode = len(b), 0o644
            tar.addfile(info, io.BytesIO(b))
    return path


def sha256sums(entries: dict[str, bytes]) -> str:
    return "".join(f"{hashlib.sha256(b).hexdigest()} *{n}\n" for n, b in entries.items())


def publish(root: Path, version: str, revision: int, *, pack_version: str | None = None,
            sums: str | None = None) -> Path:
    """Lay a release out as Oracle's download server does: root/<ver>/<file> and
    root/<ver>/SHA256SUMS (given `sums` replaces the true one, to test refusals)."""
    from builder.runner.virtualbox import VBoxVersion, extpack_filename

    d = root / version
    d.mkdir(parents=True)
    name = extpack_filename(VBoxVersion(version, revision))
    p = build(d / name, version=pack_version or version, revision=revision)
    (d / "SHA256SUMS").write_text(sums if sums is not None else sha256sums({name: p.read_bytes()}))
    return p

"""VirtualBox and its Oracle extension pack on a runner.

Plan (pure): Oracle's apt source, the package steps, version parsing, extension-pack file
names and SHA256SUMS parsing, the license hash VBoxManage wants, `list extpacks` parsing.
Apply: download (cached, retried, verified) on the controller, then VBoxManage on the target.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from lxml import etree
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from .. import templates
from ..core.digests import sha256_file
from ..core.errors import BuildFailed, UserError
from .target import Target

DEFAULT_EXTPACK_URL = "https://download.virtualbox.org/virtualbox"
APT_MIRROR = "https://download.virtualbox.org/virtualbox/debian"
KEY_URL = "https://www.virtualbox.org/download/oracle_vbox_2016.asc"
KEYRING = "/usr/share/keyrings/oracle-virtualbox-2016.gpg"
SOURCES = "/etc/apt/sources.list.d/virtualbox.sources"
LICENSE_TXT = "ExtPack-license.txt"
DESCRIPTION = "ExtPack.xml"

# `VBoxManage --version`: 7.0.20r163906, 7.0.20_Ubuntur163906 (distribution builds), 6.1.50r161033
VERSION_RE = re.compile(r"^(?P<version>\d+\.\d+\.\d+)(?:_[A-Za-z0-9]*?)?r(?P<revision>\d+)$")


@dataclass(frozen=True)
class VBoxVersion:
    version: str  # 7.0.20: what extension packs are published under
    revision: int

    @property
    def series(self) -> tuple[int, int]:
        major, minor, _ = self.version.split(".")
        return int(major), int(minor)


def parse_version(output: str) -> VBoxVersion:
    """The last line that is a version: VBoxManage prints kernel-module warnings first."""
    for line in reversed(output.strip().splitlines()):
        m = VERSION_RE.match(line.strip())
        if m:
            return VBoxVersion(m["version"], int(m["revision"]))
    raise BuildFailed(f"cannot read a VirtualBox version from `VBoxManage --version`: {output.strip()!r}")


def extpack_filename(v: VBoxVersion) -> str:
    # Oracle dropped "VM" from the product name with 7.1, and from the file name with it
    prefix = "Oracle_VM_VirtualBox_Extension_Pack" if v.series < (7, 1) else "Oracle_VirtualBox_Extension_Pack"
    return f"{prefix}-{v.version}.vbox-extpack"


def release_url(base: str, v: VBoxVersion, name: str) -> str:
    return f"{base.rstrip('/')}/{v.version}/{name}"


def parse_sha256sums(text: str) -> dict[str, str]:
    """Oracle's `<sha256> *<file>` lines (binary-mode sha256sum); two-space text mode too."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if m:
            out[m.group(2)] = m.group(1).lower()
    return out


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    for m in tar.getmembers():
        if m.isfile() and m.name.removeprefix("./") == name and (f := tar.extractfile(m)) is not None:
            return f.read()
    raise BuildFailed(f"{os.fsdecode(tar.name or '')}: no {name} inside (not an extension pack?)")


@dataclass(frozen=True)
class ExtPackFile:
    name: str
    version: str
    revision: int
    license_hash: str


def read_extpack(path: Path) -> ExtPackFile:
    """Name and version from ExtPack.xml, and the hash `--accept-license=` wants: VBoxManage
    takes SHA-256 of the plain-text license exactly as stored in the pack."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            desc = etree.fromstring(_member(tar, DESCRIPTION))
            license_hash = hashlib.sha256(_member(tar, LICENSE_TXT)).hexdigest()
    except (tarfile.TarError, OSError, etree.XMLSyntaxError) as e:
        raise BuildFailed(f"{path}: not a readable extension pack ({e})") from None
    # Oracle's description carries a default namespace; VirtualBox matches local names only
    ver, name = desc.find("{*}Version"), desc.findtext("{*}Name")
    if etree.QName(desc).localname != "VirtualBoxExtensionPack" or ver is None or not name:
        raise BuildFailed(f"{path}: {DESCRIPTION} is not an extension pack description")
    return ExtPackFile(name.strip(), ver.text.strip(), int(ver.get("revision", "0")), license_hash)


def parse_list_extpacks(text: str) -> list[dict]:
    """`VBoxManage list extpacks` blocks: `Pack no. 0:   Name` then `Key:   value` lines."""
    packs: list[dict] = []
    for line in text.splitlines():
        m = re.match(r"^Pack no\.\s*(\d+):\s*(.*)$", line)
        if m:
            packs.append({"name": m.group(2).strip()})
        elif packs and ":" in line:
            key, value = line.split(":", 1)
            packs[-1][key.strip().lower().replace(" ", "_")] = value.strip()
    for p in packs:
        p["usable"] = p.get("usable") == "true"
    return packs


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = " ".join(shlex.split(v))
    return out


def apt_source(codename: str, arch: str = "amd64") -> str:
    return templates.render("runner/virtualbox.sources.j2", mirror=APT_MIRROR, codename=codename,
                            arch=arch, keyring=KEYRING)


def package_steps(series: str, codename: str, user: str, arch: str = "amd64") -> list[list[str]]:
    """argv lists that install virtualbox-X.Y from Oracle's repository (run as root)."""
    return [
        ["sh", "-c", f"curl -fsSL {KEY_URL} | gpg --dearmor --yes -o {KEYRING}"],
        ["sh", "-c", f"printf %s {shlex.quote(apt_source(codename, arch))} > {SOURCES}"],
        ["apt-get", "update"],
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", f"virtualbox-{series}"],
        ["usermod", "-aG", "vboxusers", user],
    ]


# ---- apply ------------------------------------------------------------------------------


class _Retryable(Exception):
    pass


@retry(retry=retry_if_exception(lambda e: isinstance(e, _Retryable)), stop=stop_after_attempt(4),
       wait=wait_exponential(multiplier=0.5, max=8), reraise=True)
def _get(url: str, dest: Path | None = None) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            if dest is None:
                return r.read()
            part = dest.with_name(dest.name + ".part")
            with open(part, "wb") as f:
                while chunk := r.read(1 << 20):
                    f.write(chunk)
            part.rename(dest)
            return None
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code == 429:
            raise _Retryable(f"{url}: HTTP {e.code}") from e
        raise BuildFailed(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise _Retryable(f"{url}: {getattr(e, 'reason', e)}") from e


@overload
def get(url: str) -> bytes: ...
@overload
def get(url: str, dest: Path) -> None: ...
def get(url: str, dest: Path | None = None) -> bytes | None:
    """The body of `url`, or None once it is saved as `dest`."""
    try:
        return _get(url, dest)
    except _Retryable as e:
        raise BuildFailed(f"download failed after retries: {e}") from None


def fetch_extpack(v: VBoxVersion, base_url: str, cache: Path) -> Path:
    """The extension pack for exactly this version, verified against its release's SHA256SUMS.
    A cached copy is reused only while it still matches."""
    name = extpack_filename(v)
    sums_url = release_url(base_url, v, "SHA256SUMS")
    want = parse_sha256sums(get(sums_url).decode("utf-8", "replace")).get(name)
    if want is None:
        raise BuildFailed(f"{sums_url} lists no {name}: refusing an unverifiable extension pack")
    dest = cache / v.version / name
    if dest.is_file() and sha256_file(dest) == want:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    get(release_url(base_url, v, name), dest)
    got = sha256_file(dest)
    if got != want:
        dest.unlink()
        raise BuildFailed(f"{name}: SHA-256 {got} does not match {want} from {sums_url}: refusing it")
    return dest


def check_target(target: str) -> str:
    if target != "local" and not re.match(r"^[A-Za-z0-9_.@:-]+$", target):
        raise UserError(f"{target!r} is not an SSH destination", field="--host")
    return target


def _extpacks(t: Target) -> list[dict]:
    return parse_list_extpacks(t.run(["VBoxManage", "list", "extpacks"]).output)


def _vrde_extpack(t: Target) -> str:
    for line in t.run(["VBoxManage", "list", "systemproperties"]).output.splitlines():
        if line.startswith("Remote desktop ExtPack:"):
            return line.split(":", 1)[1].strip()
    return ""


def _usable(packs: list[dict], v: VBoxVersion) -> dict | None:
    return next((p for p in packs if p["usable"] and p.get("version") == v.version), None)


def ensure_extpack(t: Target, v: VBoxVersion, base_url: str, cache: Path) -> dict:
    """The Oracle extension pack for exactly VirtualBox's version, installed, usable and set as
    the VRDE provider. Already so → nothing is downloaded or changed."""
    changed = []
    pack = _usable(_extpacks(t), v)
    if pack is None:
        path = fetch_extpack(v, base_url, cache)
        meta = read_extpack(path)
        if meta.version != v.version:
            raise BuildFailed(f"{path.name} describes version {meta.version}, VirtualBox is {v.version}: refusing it")
        with t.staged(path) as remote:
            t.run(["VBoxManage", "extpack", "install", "--replace", f"--accept-license={meta.license_hash}",
                   remote], root=True)
        changed.append("extpack")
        pack = _usable(_extpacks(t), v)
        if pack is None:
            raise BuildFailed(f"{meta.name} {v.version} installed but `VBoxManage list extpacks` "
                              "does not show it usable at that version")
    if _vrde_extpack(t) != pack["name"]:
        t.run(["VBoxManage", "setproperty", "vrdeextpack", pack["name"]], root=True)
        changed.append("vrdeextpack")
    return {"virtualbox": v.version, "revision": v.revision, "extpack": pack["name"], "changed": changed}


def install_virtualbox(t: Target, *, series: str, user: str, base_url: str, cache: Path) -> dict:
    """virtualbox-X.Y from Oracle's repository unless VBoxManage is already there (then the
    pack follows the installed version), then the matching extension pack."""
    steps = []
    if not t.has("VBoxManage"):
        codename = parse_os_release(t.read("/etc/os-release")).get("VERSION_CODENAME")
        if not codename:
            raise BuildFailed("/etc/os-release on the target has no VERSION_CODENAME")
        for argv in package_steps(series, codename, user):
            t.run(argv, root=True, timeout=1800)
        steps.append(f"virtualbox-{series}")
    v = parse_version(t.run(["VBoxManage", "--version"]).output)
    result = ensure_extpack(t, v, base_url, cache)
    result["changed"] = steps + result["changed"]
    return result

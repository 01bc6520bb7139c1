import hashlib

import pytest

from builder.core.errors import BuildFailed
from builder.runner import virtualbox as vb
from tests.fakes import extpack


@pytest.mark.parametrize("out,version,rev", [
    ("7.0.20r163906\n", "7.0.20", 163906),
    ("7.0.20_Ubuntur163906\n", "7.0.20", 163906),
    ("6.1.50r161033", "6.1.50", 161033),
    ("7.1.4r165100", "7.1.4", 165100),
    ("WARNING: The vboxdrv kernel module is not loaded.\n\n7.0.14_Debianr161095\n", "7.0.14", 161095),
])
def test_parse_version(out, version, rev):
    assert vb.parse_version(out) == vb.VBoxVersion(version, rev)


def test_parse_version_refuses_garbage():
    with pytest.raises(BuildFailed, match="cannot read a VirtualBox version"):
        vb.parse_version("command not found")


def test_extpack_name_changes_with_7_1():
    assert vb.extpack_filename(vb.VBoxVersion("6.1.50", 1)) == "Oracle_VM_VirtualBox_Extension_Pack-6.1.50.vbox-extpack"
    assert vb.extpack_filename(vb.VBoxVersion("7.0.20", 1)) == "Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack"
    assert vb.extpack_filename(vb.VBoxVersion("7.1.0", 1)) == "Oracle_VirtualBox_Extension_Pack-7.1.0.vbox-extpack"
    assert vb.extpack_filename(vb.VBoxVersion("7.2.2", 1)) == "Oracle_VirtualBox_Extension_Pack-7.2.2.vbox-extpack"


def test_release_url():
    v = vb.VBoxVersion("7.0.20", 163906)
    assert vb.release_url(vb.DEFAULT_EXTPACK_URL + "/", v, "SHA256SUMS") == \
        "https://download.virtualbox.org/virtualbox/7.0.20/SHA256SUMS"


def test_parse_sha256sums():
    a, b = "a" * 64, "B" * 64
    text = f"{a} *Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack\n{b}  VBoxGuestAdditions_7.0.20.iso\njunk\n"
    assert vb.parse_sha256sums(text) == {
        "Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack": a,
        "VBoxGuestAdditions_7.0.20.iso": "b" * 64,
    }


def test_read_extpack_license_hash_is_sha256_of_license_txt(tmp_path):
    p = extpack.build(tmp_path / "x.vbox-extpack", version="7.0.20", revision=163906)
    meta = vb.read_extpack(p)
    assert meta.name == "Oracle VM VirtualBox Extension Pack"
    assert (meta.version, meta.revision) == ("7.0.20", 163906)
    assert meta.license_hash == hashlib.sha256(extpack.LICENSE.encode()).hexdigest()


def test_read_extpack_refuses_non_pack(tmp_path):
    p = tmp_path / "x.vbox-extpack"
    p.write_bytes(b"<html>404</html>")
    with pytest.raises(BuildFailed, match="not a readable extension pack"):
        vb.read_extpack(p)


LIST = """Extension Packs: 1
Pack no. 0:   Oracle VM VirtualBox Extension Pack
Version:        7.0.20
Revision:       163906
Edition:        
Description:    Oracle Cloud Infrastructure integration, Host Webcam, VirtualBox RDP, PXE ROM, Disk Encryption, NVMe.
VRDE Module:    VBoxVRDP
Crypto Module:  VBoxPuelCrypto
Usable:         true
Why unusable:   
"""


def test_parse_list_extpacks():
    [p] = vb.parse_list_extpacks(LIST)
    assert p["name"] == "Oracle VM VirtualBox Extension Pack"
    assert (p["version"], p["revision"], p["usable"], p["why_unusable"]) == ("7.0.20", "163906", True, "")
    assert vb.parse_list_extpacks("Extension Packs: 0\n") == []


def test_parse_os_release():
    assert vb.parse_os_release('ID=debian\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12"\n') == {
        "ID": "debian", "VERSION_CODENAME": "bookworm", "PRETTY_NAME": "Debian GNU/Linux 12"}


def test_package_steps():
    steps = vb.package_steps("7.0", "bookworm", "builder")
    assert steps[-2][-1] == "virtualbox-7.0"
    assert steps[-1] == ["usermod", "-aG", "vboxusers", "builder"]
    assert vb.KEYRING in steps[0][2] and vb.KEYRING in steps[1][2]

"""install-virtualbox against the VBoxManage stand-in, real extension-pack tarballs and a
local HTTP server laid out like download.virtualbox.org."""

import functools
import hashlib
import json

import pytest

from builder.cli import main
from builder.core.errors import BuildFailed
from builder.runner import virtualbox as vb
from builder.runner.target import Target
from tests.fakes import extpack
from tests.fakes.httpfiles import FileServer
from tests.fakes.vbox_fixture import vbox  # noqa: F401  (fixture)


@pytest.fixture
def mirror(tmp_path):
    """Publish extension packs like Oracle does: BASE/<ver>/<file> and BASE/<ver>/SHA256SUMS."""
    root = tmp_path / "mirror"
    with FileServer(root) as srv:
        srv.publish = functools.partial(extpack.publish, root)
        yield srv


def calls(state):
    return [json.loads(line) for line in (state / "calls.log").read_text().splitlines()]


def install(mirror, cache):
    return vb.install_virtualbox(Target(), series="7.0", user="builder", base_url=mirror.url, cache=cache)


def test_installs_pack_for_exact_version_then_nothing_to_do(vbox, mirror, tmp_path):
    mirror.publish("7.0.20", 163906)
    mirror.publish("7.0.18", 162988)  # a neighbour the picker must not take
    r = install(mirror, tmp_path / "cache")
    assert r == {"virtualbox": "7.0.20", "revision": 163906, "extpack": extpack.NAME_70,
                 "changed": ["extpack", "vrdeextpack"]}
    want = hashlib.sha256(extpack.LICENSE.encode()).hexdigest()
    [inst] = [c for c in calls(vbox) if c[:2] == ["extpack", "install"]]
    assert inst[2:4] == ["--replace", f"--accept-license={want}"]
    assert inst[4].endswith("7.0.20/Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack")
    assert ["setproperty", "vrdeextpack", extpack.NAME_70] in calls(vbox)
    assert all("7.0.18" not in p for p in mirror.requests)

    before = len(mirror.requests)
    assert install(mirror, tmp_path / "cache")["changed"] == []
    assert len(mirror.requests) == before  # installed and usable: not even SHA256SUMS


def test_7_1_naming_and_pack_name(vbox, mirror, tmp_path):
    (vbox / "version").write_text("7.1.4r165100\n")
    mirror.publish("7.1.4", 165100)
    r = install(mirror, tmp_path / "cache")
    assert r["extpack"] == extpack.NAME_71
    assert "/7.1.4/Oracle_VirtualBox_Extension_Pack-7.1.4.vbox-extpack" in mirror.requests


def test_distribution_build_version_picks_oracle_pack(vbox, mirror, tmp_path):
    (vbox / "version").write_text("7.0.20_Ubuntur163906\n")
    mirror.publish("7.0.20", 163906)
    assert install(mirror, tmp_path / "cache")["virtualbox"] == "7.0.20"


def test_wrong_checksum_is_refused(vbox, mirror, tmp_path):
    name = vb.extpack_filename(vb.VBoxVersion("7.0.20", 1))
    mirror.publish("7.0.20", 163906, sums=f"{'0' * 64} *{name}\n")
    with pytest.raises(BuildFailed, match="does not match"):
        install(mirror, tmp_path / "cache")
    assert not any(c[:2] == ["extpack", "install"] for c in calls(vbox))
    assert not list((tmp_path / "cache").rglob("*.vbox-extpack"))


def test_missing_sums_entry_is_refused(vbox, mirror, tmp_path):
    mirror.publish("7.0.20", 163906, sums=f"{'0' * 64} *VBoxGuestAdditions_7.0.20.iso\n")
    with pytest.raises(BuildFailed, match="lists no Oracle_VM_VirtualBox_Extension_Pack-7.0.20"):
        install(mirror, tmp_path / "cache")


def test_no_release_for_installed_version(vbox, mirror, tmp_path):
    mirror.publish("7.0.18", 162988)
    with pytest.raises(BuildFailed, match="HTTP 404"):
        install(mirror, tmp_path / "cache")


def test_pack_describing_another_version_is_refused(vbox, mirror, tmp_path):
    mirror.publish("7.0.20", 163906, pack_version="7.0.18")
    with pytest.raises(BuildFailed, match="describes version 7.0.18"):
        install(mirror, tmp_path / "cache")


def test_outdated_pack_is_replaced(vbox, mirror, tmp_path):
    (vbox / "version").write_text("7.0.18r162988\n")
    mirror.publish("7.0.18", 162988)
    mirror.publish("7.0.20", 163906)
    install(mirror, tmp_path / "cache")
    (vbox / "version").write_text("7.0.20r163906\n")  # VirtualBox upgraded: old pack unusable
    assert install(mirror, tmp_path / "cache")["changed"] == ["extpack"]
    [p] = vb.parse_list_extpacks(Target().run(["VBoxManage", "list", "extpacks"]).output)
    assert (p["version"], p["usable"]) == ("7.0.20", True)


def test_transient_server_errors_are_retried_and_cache_reused(vbox, mirror, tmp_path):
    mirror.publish("7.0.20", 163906)
    mirror.fail("/7.0.20/SHA256SUMS", 2)
    install(mirror, tmp_path / "cache")
    (vbox / "extpacks.json").unlink()
    install(mirror, tmp_path / "cache")
    assert mirror.requests.count("/7.0.20/Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack") == 1


def test_cli_local_json(vbox, mirror, tmp_path, capsys):
    mirror.publish("7.0.20", 163906)
    rc = main(["runner", "install-virtualbox", "--local", "--extpack-url", mirror.url,
               "--cache", str(tmp_path / "cache"), "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["extpack"] == extpack.NAME_70


def test_cli_refusal_exits_1(vbox, mirror, tmp_path, capsys):
    mirror.publish("7.0.20", 163906, sums="")
    rc = main(["runner", "install-virtualbox", "--local", "--extpack-url", mirror.url,
               "--cache", str(tmp_path / "cache")])
    assert rc == 1
    assert "refusing" in capsys.readouterr().err

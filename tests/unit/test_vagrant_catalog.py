"""Box catalog: merging a published version (pure), Gem::Version order checked against RubyGems,
URL builders, and the local store's atomic rewrite."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from builder.core.errors import UserError
from builder.publish import gitlab
from builder.publish.gitlab_target import GitLabTarget
from builder.vagrant import catalog
from builder.vagrant.catalog import gem_compare, update_catalog

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def providers(version: str, sha: str = SHA_A) -> list[dict]:
    return catalog.providers_for("minimal", version, {"libvirt": (f"minimal-{version}.libvirt.box", sha),
                                                      "virtualbox": (f"minimal-{version}.virtualbox.box", sha)},
                                 lambda n, v, f: f"https://boxes.example/{n}/{v}/{f}")


def test_first_publish_makes_the_catalog():
    cat = update_catalog(None, "minimal", "0.1.0", providers("0.1.0"), "Minimal VM")
    assert cat == {
        "name": "minimal",
        "description": "Minimal VM",
        "versions": [{"version": "0.1.0", "providers": [
            {"name": "libvirt", "url": "https://boxes.example/minimal/0.1.0/minimal-0.1.0.libvirt.box",
             "checksum_type": "sha256", "checksum": SHA_A},
            {"name": "virtualbox", "url": "https://boxes.example/minimal/0.1.0/minimal-0.1.0.virtualbox.box",
             "checksum_type": "sha256", "checksum": SHA_A},
        ]}],
    }


def test_new_version_is_appended_and_old_ones_kept_in_version_order():
    cat = update_catalog(None, "minimal", "0.9.0", providers("0.9.0"))
    cat = update_catalog(cat, "minimal", "0.10.0", providers("0.10.0"))
    cat = update_catalog(cat, "minimal", "0.2.0", providers("0.2.0"))
    cat = update_catalog(cat, "minimal", "0.10.0-rc1", providers("0.10.0-rc1"))
    assert [v["version"] for v in cat["versions"]] == ["0.2.0", "0.9.0", "0.10.0-rc1", "0.10.0"]
    assert cat["versions"][1]["providers"] == providers("0.9.0")


def test_same_version_is_replaced_idempotently():
    first = update_catalog(None, "minimal", "0.1.0", providers("0.1.0"))
    first = update_catalog(first, "minimal", "0.2.0", providers("0.2.0", SHA_B))
    again = update_catalog(first, "minimal", "0.2.0", providers("0.2.0", SHA_B))
    assert again == first
    replaced = update_catalog(first, "minimal", "0.2.0", providers("0.2.0", SHA_C))
    assert [v["version"] for v in replaced["versions"]] == ["0.1.0", "0.2.0"]
    assert {p["checksum"] for p in replaced["versions"][1]["providers"]} == {SHA_C}
    # Gem::Version equality: 0.2 is 0.2.0, so it replaces rather than duplicates
    assert [v["version"] for v in update_catalog(first, "minimal", "0.2", providers("0.2"))["versions"]] == \
        ["0.1.0", "0.2"]


def test_unknown_fields_of_an_existing_catalog_survive():
    cat = update_catalog(None, "minimal", "0.1.0", providers("0.1.0"))
    cat["versions"][0]["status"] = "active"
    cat["versions"][0]["providers"][0]["architecture"] = "amd64"
    out = update_catalog(cat, "minimal", "0.2.0", providers("0.2.0"))
    assert out["versions"][0]["status"] == "active"
    assert out["versions"][0]["providers"][0]["architecture"] == "amd64"


@pytest.mark.parametrize("existing, needle", [
    ({"name": "minimal", "versions": "0.1.0"}, "versions"),
    ({"versions": []}, "name"),
    ({"name": "minimal", "versions": [{"providers": []}]}, "version"),
    ({"name": "minimal", "versions": [{"version": "0.1.0", "providers": [{"name": "libvirt"}]}]}, "url"),
    ({"name": "minimal", "versions": [{"version": "1.0+build", "providers": []}]}, "1.0+build"),
    ({"name": "other", "versions": []}, "'other'"),
])
def test_malformed_existing_catalog_is_a_clear_error(existing, needle):
    with pytest.raises(UserError) as e:
        update_catalog(existing, "minimal", "0.2.0", providers("0.2.0"))
    assert "catalog" in str(e.value) and needle in str(e.value)


@pytest.mark.parametrize("version", ["1.0.0+build.1", "v1.0", "1..0", "", "1.0-", "1.0 "])
def test_versions_vagrant_would_refuse_are_refused(version):
    with pytest.raises(UserError, match="Vagrant box version"):
        update_catalog(None, "minimal", version, providers("0.1.0"))


def test_providers_need_a_sha256_each_and_no_duplicates():
    bad = providers("0.1.0")
    bad[0]["checksum"] = "abc"
    with pytest.raises(UserError, match="sha256"):
        update_catalog(None, "minimal", "0.1.0", bad)
    with pytest.raises(UserError, match="one entry per provider"):
        update_catalog(None, "minimal", "0.1.0", providers("0.1.0")[:1] * 2)


VERSIONS = ["0.1.0", "0.1", "0.10.0", "0.9.0", "1.0.0-rc1", "1.0.0-rc.2", "1.0.0-beta", "1.0.0", "1.0.0.1",
            "1.0.0-rc-3", "2.0", "1.0.0-1", "10.0.0"]


@pytest.mark.skipif(not shutil.which("ruby"), reason="ruby not installed (comes with Debian's vagrant)")
def test_order_and_validity_match_rubygems():
    """The catalog's order is Gem::Version's, and every version we accept Gem::Version accepts."""
    script = ("vs = ARGV.map { |v| Gem::Version.new(v) }\n"
              "puts vs.each_with_index.map { |a, i| vs.map { |b| a <=> b } }.inspect")
    out = subprocess.run(["ruby", "-e", script, *VERSIONS], capture_output=True, text=True, check=True).stdout
    ruby = json.loads(out)
    ours = [[gem_compare(a, b) for b in VERSIONS] for a in VERSIONS]
    assert ours == ruby
    for v in VERSIONS:
        catalog.check_box_version(v)


def test_local_urls_are_absolute_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = catalog.local_urls("out dir")("minimal", "0.1.0", "minimal-0.1.0.libvirt.box")
    assert url == f"file://{tmp_path}/out%20dir/minimal/0.1.0/minimal-0.1.0.libvirt.box"


def test_gitlab_urls_are_generic_package_file_urls():
    target = GitLabTarget(url="https://gitlab.example.com/", project="training/images", token="")
    url = gitlab.gitlab_urls(target)("minimal", "0.1.0", "minimal-0.1.0.libvirt.box")
    assert url == ("https://gitlab.example.com/api/v4/projects/training%2Fimages"
                   "/packages/generic/minimal/0.1.0/minimal-0.1.0.libvirt.box")


def test_local_catalog_publish_keeps_versions_and_leaves_no_temp_files(tmp_path):
    boxes = {"libvirt": ("minimal-0.1.0.libvirt.box", SHA_A)}
    path = catalog.publish_local_catalog(tmp_path, "minimal", "0.1.0", boxes, "Minimal")
    catalog.publish_local_catalog(tmp_path, "minimal", "0.2.0", {"libvirt": ("minimal-0.2.0.libvirt.box", SHA_B)})
    assert path == tmp_path / "minimal.json"
    cat = json.loads(path.read_text())
    assert cat["description"] == "Minimal"
    assert [v["version"] for v in cat["versions"]] == ["0.1.0", "0.2.0"]
    assert cat["versions"][0]["providers"][0]["url"] == (tmp_path / "minimal/0.1.0/minimal-0.1.0.libvirt.box").as_uri()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".minimal.json.lock", "minimal.json"]


def test_local_catalog_that_is_not_json_names_the_file(tmp_path):
    (tmp_path / "minimal.json").write_text("{not json")
    with pytest.raises(UserError, match="minimal.json: not JSON"):
        catalog.publish_local_catalog(tmp_path, "minimal", "0.1.0", {"libvirt": ("f.box", SHA_A)})
    (tmp_path / "minimal.json").write_text('{"name": "minimal", "versions": {}}')
    with pytest.raises(UserError, match=r"minimal.json: catalog: not a Vagrant box catalog"):
        catalog.publish_local_catalog(tmp_path, "minimal", "0.1.0", {"libvirt": ("f.box", SHA_A)})

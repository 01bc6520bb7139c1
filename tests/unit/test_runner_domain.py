"""Runner spec, rendered domain/volume/seed files (golden) and the libvirt apply layer
against libvirt's test:///default driver."""

from pathlib import Path

import libvirt
import pytest
from lxml import etree

from builder.core.errors import UserError
from builder.core.runs import Run
from builder.runner import domain, seed
from builder.runner.spec import RunnerSpec, load_runner
from tests.goldens import assert_golden

REPO = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenKey builder@test"


def golden(name: str, text: str) -> None:
    assert_golden(f"runner/{name}", text)


def spec(**kw) -> RunnerSpec:
    base = dict(name="runner-01", image=Path("/srv/images/minimal.qcow2"), cpus=4, memory="8G",
                disk_size="60G", ssh_authorized_keys=[KEY], tags=["virtualbox", "kvm"],
                setup=["apt-get update"], log_dir=Path("/var/log/builder/runners"))
    return RunnerSpec.model_validate({**base, **kw})


LAYOUT = domain.Layout.of(spec(), Path("/var/lib/libvirt/images"))


def test_domain_xml_nested_kvm():
    xml = domain.domain_xml(spec(), LAYOUT, "vmx")
    golden("domain-kvm.xml", xml)
    root = etree.fromstring(xml.encode())
    assert root.get("type") == "kvm"
    assert root.find("cpu").get("mode") == "host-passthrough"
    assert root.find("cpu/feature").attrib == {"policy": "require", "name": "vmx"}


def test_domain_xml_tcg_has_no_cpu_passthrough():
    xml = domain.domain_xml(spec(), LAYOUT, None)
    golden("domain-tcg.xml", xml)
    root = etree.fromstring(xml.encode())
    assert root.get("type") == "qemu" and root.find("cpu") is None
    assert root.find("devices/disk/target").attrib == {"dev": "vda", "bus": "virtio"}
    assert root.find("devices/interface/model").get("type") == "virtio"
    assert root.find("devices/serial/log").get("file") == "/var/log/builder/runners/runner-01.console.log"


def test_overlay_volume_xml():
    golden("overlay-volume.xml", domain.overlay_xml(spec(), LAYOUT))


def test_seed_files():
    files = seed.seed_files(spec())
    for name, text in files.items():
        golden(f"seed-{name}", text)
    assert files["user-data"].startswith("#cloud-config\n")


def test_instance_id_stable_and_spec_sensitive():
    assert seed.instance_id(spec()) == seed.instance_id(spec())
    assert seed.instance_id(spec()) != seed.instance_id(spec(cpus=2))


def test_metadata_roundtrip():
    meta = domain.runner_metadata(domain.domain_xml(spec(), LAYOUT, None))
    assert meta == {"overlay": str(LAYOUT.overlay), "seed": str(LAYOUT.seed),
                    "console": str(LAYOUT.console), "tags": "virtualbox,kvm"}
    assert domain.runner_metadata("<domain><name>x</name></domain>") is None


def test_example_spec_loads_with_the_newest_local_build(tmp_path):
    for v in ("0.1.0", "0.1.0.2", "0.1.0.10"):
        (tmp_path / "minimal" / v).mkdir(parents=True)
        (tmp_path / "minimal" / v / f"minimal-{v}.qcow2").touch()
    s = load_runner(REPO / "ci" / "runners" / "runner-01.yaml", tmp_path)
    assert s.image == tmp_path / "minimal" / "0.1.0.10" / "minimal-0.1.0.10.qcow2"
    assert s.memory_mib == 8192 and s.virtualbox.series == "7.0"
    assert {"builder", "kvm"} <= set(s.tags)  # what every generated job asks for
    with pytest.raises(UserError, match="builder vm minimal"):
        load_runner(REPO / "ci" / "runners" / "runner-01.yaml", tmp_path / "empty")


@pytest.mark.parametrize("data,field", [
    ({"name": "Runner_1"}, "name"),
    ({"memory": "lots"}, "memory"),
    ({"ssh_authorized_keys": []}, "ssh_authorized_keys"),
    ({"tags": ["has space"]}, "tags"),
    ({"accel": "hvf"}, "accel"),
    ({"colour": "red"}, "colour"),
])
def test_bad_spec_names_file_and_field(tmp_path, data, field):
    import yaml

    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump({"name": "r", "image": "x.qcow2", "ssh_authorized_keys": [KEY], **data}))
    with pytest.raises(UserError) as e:
        load_runner(f)
    assert e.value.file == str(f) and e.value.field.startswith(field)


def test_virt_flag_for():
    assert domain.virt_flag_for("tcg", "vmx", lambda: True) is None
    assert domain.virt_flag_for("auto", "svm", lambda: True) == "svm"
    assert domain.virt_flag_for("auto", "vmx", lambda: False) is None
    assert domain.virt_flag_for("auto", None, lambda: True) is None
    with pytest.raises(UserError, match="neither vmx nor svm"):
        domain.virt_flag_for("kvm", None, lambda: True)


# ---- apply against test:///default ---------------------------------------------------------


@pytest.fixture
def conn(tmp_path):
    c = libvirt.open("test:///default")
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    c.storagePoolCreateXML(f"<pool type='dir'><name>runners</name><target><path>{pool_dir}</path></target></pool>", 0)
    yield c
    c.close()


@pytest.fixture
def run(tmp_path):
    with Run(root=tmp_path / "runs") as r:
        yield r


@pytest.fixture
def rspec(tmp_path):
    base = tmp_path / "base.qcow2"
    base.write_bytes(b"QFI\xfb")
    return spec(image=base, pool="runners", log_dir=tmp_path / "log")


def test_provision_is_idempotent_and_destroy_leaves_nothing(conn, run, rspec, tmp_path):
    first = domain.provision(conn, rspec, run, None)
    assert first == {"name": "runner-01", "created": True}
    dom = conn.lookupByName("runner-01")
    assert dom.isActive()
    assert (tmp_path / "pool" / "runner-01-seed.iso").is_file()
    assert (run.dir / "journal.jsonl").read_text() == ""  # everything handed over to the runner
    second = domain.provision(conn, rspec, run, None)
    assert second == {"name": "runner-01", "created": False}
    assert [r["name"] for r in domain.list_runners(conn)] == ["runner-01"]
    assert "runner-01.qcow2" in conn.storagePoolLookupByName("runners").listVolumes()

    assert domain.destroy(conn, "runner-01") == {"name": "runner-01", "removed": True}
    assert domain.list_runners(conn) == []
    assert "runner-01" not in [d.name() for d in conn.listAllDomains()]
    assert conn.storagePoolLookupByName("runners").listVolumes() == []
    assert list((tmp_path / "pool").iterdir()) == []
    assert domain.destroy(conn, "runner-01")["removed"] is False


def test_restarts_stopped_runner(conn, run, rspec):
    domain.provision(conn, rspec, run, None)
    conn.lookupByName("runner-01").destroy()
    assert domain.provision(conn, rspec, run, None)["created"] is False
    assert conn.lookupByName("runner-01").isActive()


def test_name_taken_by_foreign_domain(conn, run, rspec):
    with pytest.raises(UserError, match="not made by builder"):
        domain.provision(conn, rspec.model_copy(update={"name": "test"}), run, None)
    with pytest.raises(UserError, match="not made by builder"):
        domain.destroy(conn, "test")


def test_missing_pool_network_and_image(conn, run, rspec, tmp_path):
    with pytest.raises(UserError, match="storage pool 'nope' not found"):
        domain.provision(conn, rspec.model_copy(update={"pool": "nope"}), run, None)
    net = rspec.network.model_copy(update={"name": "nope"})
    with pytest.raises(UserError, match="network 'nope' not found"):
        domain.provision(conn, rspec.model_copy(update={"network": net}), run, None)
    with pytest.raises(UserError, match="base image"):
        domain.provision(conn, rspec.model_copy(update={"image": tmp_path / "none.qcow2"}), run, None)


def test_failure_midway_is_undone_by_teardown(conn, rspec, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise libvirt.libvirtError("define failed")

    monkeypatch.setattr(conn, "defineXML", boom)
    with pytest.raises(Exception, match="define failed"), Run(root=tmp_path / "runs2") as r:
        domain.provision(conn, rspec, r, None)
    assert not (tmp_path / "pool" / "runner-01-seed.iso").exists()


def test_no_libvirtd_is_a_clear_message():
    from builder.core.errors import BuildFailed

    with pytest.raises(BuildFailed, match="libvirtd is not running"):
        domain.connect("qemu+unix:///system?socket=/nonexistent/libvirt-sock")

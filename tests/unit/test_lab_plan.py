"""The Ceph lab's reference steps and ceph.conf as rendered for the image's fabric (golden files),
the values that reach them validated, and the suite's own guest scripts."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import uuid

import pytest
from pydantic import ValidationError

from builder.core.errors import UserError
from builder.fabric import validate as fabric_validate
from builder.lab import plan as labplan
from builder.lab import suite
from builder.spec import load_image
from tests.goldens import assert_golden
from tests.repo import IMAGES

SPEC = load_image("ceph-training", IMAGES)
FSID = uuid.UUID("5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f")


def one_node() -> labplan.LabPlan:
    topo = fabric_validate.load((SPEC.dir / SPEC.fabric).resolve())
    return labplan.plan_one_node(SPEC, labplan.load_lab(SPEC), topo, "image", FSID)


def test_plan_binds_the_mon_to_the_overlay_ipv6_address():
    p = one_node()
    assert p.node.name == "ceph-training" and p.mons == (p.node,)
    assert p.node.address == ipaddress.IPv6Address("2a00:f10:114:1000::101")
    assert p.public_network == ipaddress.IPv6Network("2a00:f10:114:1000::/64")
    assert p.osd_count == 3 and p.osd_memory_target_bytes == 896 << 20


def test_ceph_conf_golden_ipv6_only():
    text = labplan.ceph_conf(labplan.load_lab(SPEC), one_node())
    assert_golden("lab/ceph-training.ceph.conf", text)
    assert "ms_bind_ipv6 = true\nms_bind_ipv4 = false\n" in text
    assert "osd_crush_chooseleaf_type = 0\n" in text


def test_steps_golden_and_valid_shell():
    steps = labplan.render_steps(labplan.load_lab(SPEC), one_node())
    assert list(steps) == ["00-node.sh", "10-config.sh", "20-mon.sh", "30-mgr.sh", "40-osds.sh"]
    for name, text in steps.items():
        assert_golden(f"lab/ceph-training.{name}", text)
        r = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


@pytest.mark.parametrize("bad", [
    {"node": {"name": "Bad Name", "address": "2001:db8::1"}},
    {"node": {"name": "n1", "address": "10.0.0.1"}},
    {"node": {"name": "n1", "address": "fe80::1"}},
    {"node": {"name": "n1", "address": "2001:db8:1::1"}},  # outside public_network
    {"node": {"name": "n1;reboot", "address": "2001:db8::1"}},
    {"fsid": "not-a-uuid"},
    {"osd_memory_target_mib": 512},
    {"public_network": "2001:db8::/64; rm -rf /"},
    {"device": "eth0; reboot"},
])
def test_plan_rejects_values_that_would_reach_a_script(bad):
    good = {"fsid": str(FSID), "public_network": "2001:db8::/64", "node": {"name": "n1", "address": "2001:db8::1"},
            "device": "vxlan1000",
            "mons": [{"name": "n1", "address": "2001:db8::1"}], "osd_count": 3, "osd_memory_target_mib": 896,
            "heartbeat_grace": 60}
    with pytest.raises(ValidationError):
        labplan.LabPlan.model_validate({**good, **bad})


def test_lab_needs_big_enough_data_disks(tmp_path):
    small = SPEC.model_copy(update={"data_disks": ("4G",) * 3})
    with pytest.raises(UserError, match="5 GB"):
        labplan.load_lab(small)
    with pytest.raises(UserError, match="data_disks"):
        labplan.load_lab(SPEC.model_copy(update={"data_disks": ()}))


def test_images_without_lab_have_none():
    assert labplan.has_lab(SPEC) and not labplan.has_lab(load_image("minimal", IMAGES))


def test_suite_scripts_and_seeded_object():
    scripts = suite.check_scripts(7)
    for name, text in scripts.items():
        assert_golden(f"lab/check-{name}.sh", text)
    r = subprocess.run(["python3", "-c", suite.generator(7)], capture_output=True, check=True)
    assert len(r.stdout) == suite.OBJECT_BYTES

    assert hashlib.sha256(r.stdout).hexdigest() == suite.seeded_digest(7) != suite.seeded_digest(8)


def test_health_predicates():
    assert suite.is_ok({"status": "HEALTH_OK", "checks": {}})
    assert not suite.is_degraded({"status": "HEALTH_WARN", "checks": {"OSD_DOWN": {}}})
    assert suite.is_degraded({"status": "HEALTH_WARN", "checks": {"OSD_DOWN": {}, "PG_DEGRADED": {}}})


def test_a_failing_step_stops_the_rest_and_is_named():
    """The suite's control flow against an executor standing in for a guest whose mon never starts."""
    steps = labplan.render_steps(labplan.load_lab(SPEC), one_node())
    ran = []

    def guest(argv, timeout):
        ran.append(argv[-1])
        return (1, "", "the monitor does not answer\n") if "ceph-mon --mkfs" in argv[-1] else (0, "", "")

    cases = suite.lab_cases(guest, steps, seed=7)
    assert [(c.name, c.passed) for c in cases] == [
        ("step/00-node.sh", True), ("step/10-config.sh", True), ("step/20-mon.sh", False)]
    assert "the monitor does not answer" in cases[-1].evidence and len(ran) == 3


def test_a_wrong_digest_fails_the_round_trip():
    steps = {"10-config.sh": "true"}
    healthy = json.dumps({"status": "HEALTH_OK", "checks": {}})

    def guest(argv, timeout):
        if argv[:2] == ["ceph", "health"]:
            return 0, healthy, ""
        if "rados -p" in argv[-1]:
            return 0, f"written {suite.seeded_digest(7)}\nread {'0' * 64}\n", ""
        return 0, "{}", ""

    cases = suite.lab_cases(guest, steps, seed=7)
    assert [(c.name, c.passed) for c in cases][-1] == ("rados-put-get", False)
    assert "differs" in cases[-1].evidence

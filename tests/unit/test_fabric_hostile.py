"""Issue 13, fabrics: values that reach VyOS config or a guest's root shell are validated and
quoted; topologies the renderers cannot express are bad input (exit 2), not tracebacks."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from builder.cli import main
from builder.core.errors import UserError
from builder.fabric import iscsi, vmnode
from builder.fabric.model import Fabric
from builder.fabric.render import iproute2, networkd, vyos
from builder.fabric.validate import resolve
from builder.spec import validate

ROOT = Path(__file__).resolve().parents[2]
SEED = yaml.safe_load((ROOT / "fabrics/seed-poc.yaml").read_text())
LAB = yaml.safe_load((ROOT / "fabrics/ceph-lab.yaml").read_text())
F = Path("f.yaml")

NO_UNDERLAY = """name: f
segments: [{name: s1, mtu: 9000, ipv4: 192.168.0.0/24}]
overlays: [{name: vx1, vni: 1000, underlay: s1, ipv4: 10.0.0.0/24}]
nodes:
  - {name: a, interfaces: [{attach: vx1, ipv4: auto}]}
"""
NO_PORT = """name: f
segments: [{name: s1, ipv4: 192.168.0.0/24}]
nodes:
  - {name: r, platform: vyos, role: router, interfaces: [{attach: s1, ipv4: auto}]}
"""
V6_GROUP_V4_UNDERLAY = """name: f
segments: [{name: s1, mtu: 9000, ipv4: 192.168.0.0/24}]
overlays: [{name: vx1, vni: 1000, underlay: s1, group: "ff05::100", ipv4: 10.0.0.0/24}]
nodes:
  - {name: a, interfaces: [{attach: s1, port: eth0, ipv4: auto}, {attach: vx1, ipv4: auto}]}
"""


@pytest.mark.parametrize("text, fmt, field", [
    (NO_UNDERLAY, "iproute2", "nodes[0].interfaces[0].attach"),
    (NO_PORT, "vyos", "nodes[0].interfaces[0].port"),
    (V6_GROUP_V4_UNDERLAY, "iproute2", "overlays[0].group"),
])
def test_unrenderable_topologies_exit_2(tmp_path, capsys, text, fmt, field):
    f = tmp_path / "f.yaml"
    f.write_text(text)
    assert main(["fabric", "render", str(f), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err


def _seed_with(mutate) -> dict:
    data = copy.deepcopy(SEED)
    mutate(data)
    return data


def test_segment_description_cannot_inject_vyos_config():
    data = _seed_with(lambda d: d["segments"][1].update(description="x\n}\nservice { ssh { port 2222 } }\n{"))
    with pytest.raises(UserError) as e:
        validate(Fabric, data, F)
    assert e.value.field == "segments[1].description"
    # a description with spaces is quoted, one word stays bare as in the seed
    topo = resolve(validate(Fabric, _seed_with(lambda d: d["segments"][1].update(description="VXLAN transport (v4)")), F))
    assert '            description "VXLAN transport (v4)"\n' in vyos.render(topo)


def test_iscsi_sysctl_keys_cannot_reach_the_guest_shell():
    data = copy.deepcopy(LAB)
    data["iscsi"]["initiator"]["sysctls"] = {"rp_filter=0; touch /pwned #": 0}
    with pytest.raises(UserError) as e:
        validate(Fabric, data, F)
    assert e.value.field.startswith("iscsi.initiator.sysctls")


# --- properties: what validation accepts renders into text whose structure it cannot change ----

DESCRIPTION = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._,:/()+-]{0,40}", fullmatch=True)
SYSCTL = st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
                         st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=4)


def vyos_tree(text: str) -> list:
    """A strict reader of VyOS's curly config: `node {`, `}`, `key [value]`, value maybe "quoted"."""
    root: list = []
    stack = [root]
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s == "}":
            stack.pop()
            assert stack, "unbalanced }"
            continue
        m = re.fullmatch(r'([a-z0-9-]+)(?: ([^"{}\s]+|"[^"\\{}\n]*"))?( \{)?', s)
        assert m, f"not a VyOS config line: {s!r}"
        value = m.group(2)
        if value and value.startswith('"'):
            value = value[1:-1]
        node = [m.group(1), value, []]
        stack[-1].append(node)
        if m.group(3):
            stack.append(node[2])
    assert len(stack) == 1, "unclosed {"
    return root


def _find(tree: list, key: str) -> list[str]:
    out = []
    for k, v, kids in tree:
        if k == key:
            out.append(v)
        out += _find(kids, key)
    return out


@settings(max_examples=150, deadline=None)
@given(DESCRIPTION)
def test_vyos_description_round_trips(description):
    data = _seed_with(lambda d: d["segments"][1].update(description=description))
    try:
        topo = resolve(validate(Fabric, data, F))
    except UserError:
        return
    tree = vyos_tree(vyos.render(topo))
    assert _find(tree, "description") == [description]
    assert len(_find(tree, "vxlan")) == 2  # structure unchanged


@settings(max_examples=100, deadline=None)
@given(SYSCTL)
def test_iscsi_initiator_script_quotes_sysctls(sysctls):
    data = copy.deepcopy(LAB)
    data["iscsi"]["initiator"]["sysctls"] = sysctls
    try:
        topo = resolve(validate(Fabric, data, F))
    except UserError:
        return
    p = iscsi.plan(topo)
    script = iscsi.initiator_script(p)
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    got = [shlex.split(line)[2:] for line in script.splitlines() if line.startswith("sysctl -w ")]
    want = [[f"net.ipv4.conf.{d}.{k}={v}" for d in ("all", *p.devices)] for k, v in sysctls.items()]
    assert got == want


NAMES = st.from_regex(r"[a-z][a-z0-9]{0,14}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(seg=NAMES, overlay=NAMES, node=st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True))
def test_linux_renderers_keep_names_intact(seg, overlay, node):
    """Renamed nets and nodes: the iproute2 text splits back into the plan, the guest script
    parses, and networkd files are only `[Section]`, `Key=Value` and comment lines."""
    data = copy.deepcopy(LAB)
    old_seg, old_ov = "vlan300", "vxlan1000"
    text = yaml.safe_dump(data).replace(old_seg, seg).replace(old_ov, overlay).replace("name: image", f"name: {node}")
    data = yaml.safe_load(text)
    data["iscsi"]["initiator"]["node"] = node
    try:
        topo = resolve(validate(Fabric, data, F))
    except (UserError, ValidationError):
        return
    n = topo.node(node)
    lines = iproute2.render(topo, node).splitlines()[1:]
    assert [shlex.split(line) for line in lines] == iproute2.node_plan(n)
    script = vmnode.script(topo, n)
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    assert f"name {seg}\n" in script
    for name, body in networkd.node_files(n).items():
        assert re.fullmatch(r"[0-9]{2}-[a-z0-9-]+\.(network|netdev)", name)
        for line in body.splitlines():
            assert line == "" or line.startswith("#") or re.fullmatch(r"\[[A-Za-z]+\]|[A-Za-z0-9]+=[^\n]*", line), line
    assert f"Name={overlay}" in networkd.node_files(n)[f"30-{overlay}.netdev"]

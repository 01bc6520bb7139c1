"""The fabric picture's DOT text: goldens for the shipped fabrics, every real check name marks
an element that exists, and hostile names from a user's file cannot change the DOT structure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.fabric import checks, iscsi_checks
from builder.fabric.model import Fabric, Interface, Node, Segment
from builder.fabric.render.dot import check_elements, fabric_dot, quote
from builder.fabric.validate import load, resolve
from tests.goldens import assert_golden

ROOT = Path(__file__).resolve().parents[2]
FABRICS = {p.stem: load(p) for p in sorted((ROOT / "fabrics").glob("*.yaml"))}
DECLARED_ID = re.compile(r'\bid="([^"]*)"')


@pytest.mark.parametrize("name", sorted(FABRICS))
def test_golden(name):
    assert_golden(f"fabric/{name}.dot", fabric_dot(FABRICS[name]))


def test_golden_with_failed_checks():
    failed = {"ping/v4/vxlan1000/image->router", "multipath-path-failure-under-io", "mtu/v4/vxlan1000/df-1472-passes-1473-fails"}
    assert_golden("fabric/ceph-lab-failed.dot", fabric_dot(FABRICS["ceph-lab"], failed))


def _check_names(topo) -> list[str]:
    """The names the real checks give their cases on this fabric (nothing is run)."""
    ctx = checks.Context(topo, {n.name: None for n in topo.nodes}, spawn=lambda *a: None, seed=1)
    names = [name for check in checks.ALL for name, _ in check(ctx)]
    return names + [name for name, _ in iscsi_checks.cases(ctx)]


@pytest.mark.parametrize("name", sorted(FABRICS))
def test_every_check_marks_an_element_of_the_picture(name):
    topo = FABRICS[name]
    names = _check_names(topo) + [f"setup/{n.name}/network" for n in topo.nodes]
    assert any(n.startswith("anyip/") for n in names) and any(n.startswith("ping/") for n in names)
    ids = set(DECLARED_ID.findall(fabric_dot(topo)))
    for check in names:
        marked = check_elements(topo, check)
        assert marked and marked <= ids, (check, marked - ids)


def test_failed_marks_only_the_tested_elements():
    topo = FABRICS["ceph-lab"]
    dot = fabric_dot(topo, {"ra/vxlan1000/image", "systemd-multi-user"})
    failed = [line for line in dot.splitlines() if 'class="failed"' in line]
    assert len(failed) == 1 and 'id="link:image:vxlan1000"' in failed[0] and 'color="#c62828"' in failed[0]
    assert check_elements(topo, "systemd-multi-user") == set()  # the boot suite's cases mark nothing


def test_check_name_mapping():
    seed, ceph = FABRICS["seed-poc"], FABRICS["ceph-lab"]
    assert check_elements(seed, "isolation/vxlan1000-x-vxlan2000") == {"net:vxlan1000", "net:vxlan2000"}
    assert check_elements(seed, "ping/v6/vxlan2000/web2000->router") == {"link:web2000:vxlan2000", "link:router:vxlan2000"}
    assert check_elements(seed, "anyip/192.168.100.0/24/tcp-freebind/router") == {"anyip:anyip:192.168.100.0/24"}
    assert check_elements(ceph, "iscsi-initiator-setup") == {"node:image"}
    assert check_elements(ceph, "multipath-two-active-paths") == {"iscsi:172.16.0.1", "iscsi:172.16.1.1"}


def test_replicas_draw_as_one_element():
    data = {
        "name": "many",
        "segments": [{"name": "lan", "ipv4": "10.9.0.0/16"}],
        "nodes": [{"name": "gw", "role": "router", "interfaces": [{"attach": "lan", "ipv4": "10.9.0.1"}]},
                  {"name": "h", "replicas": 300, "interfaces": [{"attach": "lan", "ipv4": "auto"}]}],
    }  # fmt: skip
    topo = resolve(Fabric.model_validate(data))
    dot = fabric_dot(topo, {"ping/v4/lan/h-17->gw"})
    assert dot.count('shape="box"') == 2  # the segment and the one element for h-1..h-300
    assert "h-1 … h-300 (×300)" in dot and "10.9.0.2 … 10.9.1.45/16 (300)" in dot
    assert 'id="link:h:lan", class="failed"' not in dot and re.search(r'id="link:h:lan"[^\n]*class="failed"', dot)


def test_quote_keeps_a_trailing_backslash_inside_the_string():
    assert quote('a"b\\') == '"a\\"b\\\\"'
    assert quote("two\nlines\r\x00") == '"two\\nlines\\n"'


# every character that could end a string, open a block, start an attribute list or an HTML label
HOSTILE = 'evil"} x -> y [label="pwn"] {\\\nnext <b>&amp;</b> \' ]>'


def unvalidated_fabric(name: str, text: str):
    """A fabric whose names and free text are `name`/`text`: built without validation, as if
    the patterns on names were ever loosened; descriptions are free text even today."""
    seg = Segment.model_construct(name=f"{name}s", vlan=7, mtu=1500, ipv4=None, ipv6=None, description=text, shard=False)
    nodes = tuple(Node.model_construct(name=f"{name}{i}", kind="netns", role="host", platform="linux", replicas=1,
                                       interfaces=(Interface(attach=f"{name}s"),), anyip=())
                  for i in (1, 2))  # fmt: skip
    fab = Fabric.model_construct(name=name, description=text, segments=(seg,), overlays=(), nodes=nodes, iscsi=None,
                                 anyip_probes=8)  # fmt: skip
    return resolve(fab)


def _skeleton(dot: str) -> list[str]:
    """The DOT text with every quoted string and HTML-like label replaced by a placeholder."""
    out = re.sub(r'"(?:[^"\\]|\\.)*"', "Q", dot)
    return re.sub(r"label=<.*>\]$", "label=H]", out, flags=re.MULTILINE).splitlines()


def test_hostile_names_cannot_change_the_structure():
    benign, hostile = fabric_dot(unvalidated_fabric("n", "plain")), fabric_dot(unvalidated_fabric(HOSTILE, HOSTILE))
    assert _skeleton(hostile) == _skeleton(benign)
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in hostile  # inside HTML-like labels, escaped as XML
    html_labels = "".join(re.findall(r"label=<.*>\]$", hostile, flags=re.MULTILINE))
    assert html_labels and "<b>" not in html_labels


def test_cli_renders_dot_and_rejects_options_of_the_other_formats(capsys):
    from builder.cli import main

    seed = str(ROOT / "fabrics/seed-poc.yaml")
    assert main(["fabric", "render", seed, "--format", "dot"]) == 0
    assert capsys.readouterr().out == fabric_dot(FABRICS["seed-poc"])
    assert main(["fabric", "render", seed, "--format", "dot", "--failed", "isolation/vxlan1000-x-vxlan2000"]) == 0
    assert capsys.readouterr().out.count('class="failed"') == 2
    assert main(["fabric", "render", seed, "--format", "svg", "--node", "router"]) == 2
    assert main(["fabric", "render", seed, "--format", "vyos", "--failed", "x"]) == 2
    assert "--failed" in capsys.readouterr().err


def test_svg_without_graphviz_is_a_build_failure_naming_the_package(monkeypatch):
    from builder.core.errors import BuildFailed
    from builder.fabric.render.dot import svg

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildFailed, match="graphviz"):
        svg("digraph {}")

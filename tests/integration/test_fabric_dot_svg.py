"""Graphviz lays the fabric picture out: `dot -Tsvg` accepts the DOT of every shipped fabric and
of a hostile one, the SVG keeps the element ids, and failed elements carry the `failed` class."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from builder.fabric.render.dot import fabric_dot, svg
from builder.fabric.validate import load
from tests.unit.test_fabric_dot import HOSTILE, unvalidated_fabric

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (apt-get install graphviz)")
ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("fabric", sorted(p.name for p in (ROOT / "fabrics").glob("*.yaml")))
def test_dot_lays_out_every_shipped_fabric(fabric):
    topo = load(ROOT / "fabrics" / fabric)
    failed = {"multipath-two-active-paths"} if topo.fabric.iscsi else {"isolation/vxlan1000-x-vxlan2000"}
    dot = fabric_dot(topo, failed)
    # stderr apart: Graphviz warns there about what it could not honour (a bad port, arrow, font)
    p = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    root = etree.fromstring(svg(dot).encode())
    groups = {g.get("id"): g.get("class") for g in root.iter(f"{SVG}g")}
    for n in topo.nodes:
        assert f"node:{n.name}" in groups
    for net in topo.fabric.nets:
        assert groups[f"net:{net}"].split()[0] == "node"
    failed = {k for k, v in groups.items() if "failed" in (v or "").split()}
    assert failed == ({"iscsi:172.16.0.1", "iscsi:172.16.1.1"} if topo.fabric.iscsi else {"net:vxlan1000", "net:vxlan2000"})


def test_hostile_names_stay_text_in_the_svg():
    root = etree.fromstring(svg(fabric_dot(unvalidated_fabric(HOSTILE, HOSTILE))).encode())
    nodes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    assert len(nodes) == 3 and len([g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]) == 2
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert 'evil"} x -> y [label="pwn"] {\\' in texts  # the first line of the name, as plain text
    assert "next <b>&amp;</b> ' ]>1" in texts


"""The fabric as a picture: a resolved Topology in, Graphviz DOT text out (pure), and the one
`dot -Tsvg` call that lays it out.

Every name and description comes from a user's fabric file, so every string that reaches the
DOT text goes through `quote` (a quoted DOT string) or `html` (text inside an HTML-like label).
The `graphviz` PyPI package is not used for this: its quoting passes backslash escapes through
and takes any `<...>` string for an HTML label, so user text would need escaping first anyway.

Element ids are stable and name what was tested, so a check result can mark it failed (red,
bold, SVG class `failed`). They are also the SVG elements' `id`s:

    node:NODE            a node: router (hexagon), iSCSI target (cylinder), VM (box3d), host (box);
                         a replicated node (`replicas: N`) is one element named after its entry
    net:NET              a segment (VLAN, MTU, subnets) or an overlay (VNI -> group, MTU budget)
    link:NODE:NET        a node's attachment to a segment or overlay
    carrier:OVERLAY      an overlay's VXLAN over its underlay segment
    anyip:NODE:PREFIX    an AnyIP prefix NODE answers for (`ip route add local PREFIX dev lo`)
    iscsi:PORTAL         one iSCSI path, initiator -> target portal

Check result names (builder/fabric/checks.py, iscsi_checks.py, vmnode.py) map to elements:

    setup/NODE/network                   node:NODE
    ping/vV/NET/SRC->DST                 link:SRC:NET and link:DST:NET
    isolation/A-x-B                      net:A and net:B
    mtu/vV/OVERLAY/...                   net:OVERLAY and carrier:OVERLAY
    ra/OVERLAY/NODE                      link:NODE:OVERLAY
    anyip/PREFIX/...                     every anyip:*:PREFIX
    iscsi-initiator-setup                node:INITIATOR
    iscsi-* and multipath-* (the rest)   every iscsi:PORTAL (the multipath map is both paths)

Any other name (the boot suite's) marks nothing.
"""

from __future__ import annotations

import html as _html
import re
import shutil
import tempfile
from pathlib import Path

from ...core import proc
from ...core.errors import BuildFailed
from ..iscsi import PORT, plan
from ..iscsi_checks import STEPS
from ..validate import Link, ResolvedNode, Topology

FAILED = {"color": "#c62828", "fontcolor": "#c62828", "penwidth": "3", "class": "failed"}
SHAPES = {"router": "hexagon", "storage": "cylinder", "vm": "box3d", "host": "box"}
FILL = {"router": "#eef3fb", "storage": "#f3eefb", "vm": "#fff4e5", "host": "#ffffff"}
SEGMENT = {"shape": "box", "style": "filled,rounded", "fillcolor": "#e3ecf7", "color": "#4a6fa5"}
OVERLAY = {"shape": "box", "style": "filled,rounded", "fillcolor": "#e6f4ea", "color": "#3c8d5a"}
ANYIP = {"shape": "note", "fillcolor": "#fff8e1", "color": "#b08800"}
ISCSI_PATH = {"color": "#6a3d9a", "fontcolor": "#6a3d9a", "style": "bold", "dir": "forward", "constraint": "false"}
SVG_TIMEOUT = 60

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # XML (HTML labels) cannot carry these


def quote(value: object) -> str:
    """A DOT quoted string: backslash and quote escaped (a trailing backslash would otherwise
    swallow the closing quote), newlines as DOT's `\\n` line break, control characters dropped."""
    s = _CONTROL.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n"))
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def html(value: object) -> str:
    """Text for an HTML-like label: XML-escaped, newlines as <BR/>."""
    s = _CONTROL.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n"))
    return _html.escape(s, quote=True).replace("\n", '<BR ALIGN="LEFT"/>')


def _attrs(attrs: dict[str, str], label: str | None = None) -> str:
    """`[k="v", ...]`; `label` is an already escaped HTML-like label (emitted as <...>)."""
    parts = [f"{k}={quote(v)}" for k, v in attrs.items()]
    if label is not None:
        parts.append(f"label=<{label}>")
    return "[" + ", ".join(parts) + "]"


Row = tuple[str | None, str, str]  # (port, left cell, right cell)


def _table(title: str, subtitle: str, rows: list[Row]) -> str:
    """An HTML-like label: bold title, grey subtitle, then (port, left, right) rows; the
    cells are escaped here, the port ids are ours: PORT on the right cell (edges to nets leave
    east), PORTw on the left one (iSCSI paths arrive from the west)."""
    out = ['<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">',
           f'<TR><TD COLSPAN="2"><B>{html(title)}</B></TD></TR>']  # fmt: skip
    if subtitle:
        out.append(f'<TR><TD COLSPAN="2"><FONT POINT-SIZE="9" COLOR="#555555">{html(subtitle)}</FONT></TD></TR>')
    for port, left, right in rows:
        west, east = (f' PORT="{port}w"', f' PORT="{port}"') if port else ("", "")
        out.append(f'<TR><TD{west} ALIGN="LEFT">{html(left)}</TD><TD{east} ALIGN="LEFT">{html(right)}</TD></TR>')
    out.append("</TABLE>")
    return "".join(out)


def _groups(topo: Topology) -> dict[str, list[ResolvedNode]]:
    """Fabric node entry -> its resolved nodes (name-1..name-N for `replicas`), in file order."""
    by_name = {n.name: n for n in topo.nodes}
    out = {}
    for entry in topo.fabric.nodes:
        names = [entry.name] if entry.replicas == 1 else [f"{entry.name}-{r + 1}" for r in range(entry.replicas)]
        out[entry.name] = [by_name[n] for n in names]
    return out


def _owner(topo: Topology) -> dict[str, str]:
    """Resolved node name -> the element (fabric node entry) that draws it."""
    return {n.name: entry for entry, nodes in _groups(topo).items() for n in nodes}


def _kind(topo: Topology, node: ResolvedNode) -> str:
    sc = topo.fabric.iscsi
    if node.role == "router":
        return "router"
    if sc is not None and sc.target.node == node.name:
        return "storage"
    return "vm" if node.kind == "vm" else "host"


def _addresses(links: list[Link]) -> str:
    """A link's addresses; for replicas the first and the last of the range."""
    lines = []
    for fam in ("ipv4", "ipv6"):
        addrs = [getattr(lk, fam) for lk in links if getattr(lk, fam) is not None]
        if len(addrs) == 1:
            lines.append(str(addrs[0]))
        elif addrs:
            lines.append(f"{addrs[0].ip} … {addrs[-1]} ({len(addrs)})")
    return "\n".join(lines) or "no address"


def check_elements(topo: Topology, name: str) -> set[str]:
    """The element ids a check result name tested (table in the module docstring)."""
    owner = _owner(topo)
    parts = name.split("/")
    head = parts[0]

    def link(node: str, net: str) -> str:
        return f"link:{owner.get(node, node)}:{net}"

    if head == "setup" and len(parts) == 3:
        return {f"node:{owner.get(parts[1], parts[1])}"}
    if head == "ping" and len(parts) == 4 and "->" in parts[3]:
        src, dst = parts[3].split("->", 1)
        return {link(src, parts[2]), link(dst, parts[2])}
    if head == "isolation" and len(parts) == 2 and "-x-" in parts[1]:
        return {f"net:{n}" for n in parts[1].split("-x-", 1)}
    if head == "mtu" and len(parts) >= 3:
        return {f"net:{parts[2]}", f"carrier:{parts[2]}"}
    if head == "ra" and len(parts) == 3:
        return {link(parts[2], parts[1])}
    if head == "anyip" and len(parts) >= 3:
        prefix = f"{parts[1]}/{parts[2]}"
        return {f"anyip:{owner[n.name]}:{p}" for n in topo.nodes for p in n.anyip if str(p) == prefix}
    p = plan(topo)
    if p is not None and name in {step for step, _, _ in STEPS}:
        if name == STEPS[0][0]:
            return {f"node:{owner.get(p.initiator_node, p.initiator_node)}"}
        return {f"iscsi:{a}" for a in p.portals}
    return set()


def fabric_dot(topology: Topology, failed: set[str] | frozenset[str] = frozenset()) -> str:
    """DOT text of the fabric; elements tested by a check named in `failed` drawn failed."""
    topo = topology
    bad = set().union(*(check_elements(topo, n) for n in failed))

    def mark(eid: str, attrs: dict[str, str]) -> dict[str, str]:
        return {"id": eid, **attrs, **(FAILED if eid in bad else {})}

    f = topo.fabric
    title = f.name + (f"\n{f.description}" if f.description else "")
    graph = {"rankdir": "LR", "fontname": "DejaVu Sans", "fontsize": "12", "labelloc": "t", "nodesep": "0.35",
             "ranksep": "0.9", "pad": "0.2", "bgcolor": "white", "label": title}
    out = [
        f"digraph {quote('fabric:' + f.name)} {{",
        f"  graph {_attrs(graph)}",
        f"  node {_attrs({'fontname': 'DejaVu Sans', 'fontsize': '10', 'style': 'filled', 'margin': '0.12,0.06'})}",
        f"  edge {_attrs({'fontname': 'DejaVu Sans', 'fontsize': '9', 'dir': 'none', 'color': '#607080'})}",
    ]

    for s in f.segments:
        sub = f"VLAN {s.vlan}" if s.vlan else "untagged"
        rows: list[Row] = [(None, fam, str(getattr(s, fam))) for fam in ("ipv4", "ipv6") if getattr(s, fam)]
        if s.description:
            rows.append((None, "note", s.description))
        label = _table(s.name, f"segment · {sub} · MTU {s.mtu}", rows)
        out.append(f"  {quote('net:' + s.name)} " + _attrs(mark(f"net:{s.name}", SEGMENT), label))
    for o in f.overlays:
        under = f.nets[o.underlay]
        budget = under.mtu - o.overhead
        fam = f"IPv{o.mcast_group.version}"
        rows = [
            (None, "group", f"VNI {o.vni} → {o.mcast_group} (udp {o.dstport}, ttl {o.ttl})"),
            (None, "MTU", f"{o.mtu} ≤ {under.mtu} − {o.overhead} ({fam} underlay) = {budget}"),
        ]
        rows += [(None, fam, str(getattr(o, fam))) for fam in ("ipv4", "ipv6") if getattr(o, fam)]
        if o.ra:
            rows.append((None, "RA", ", ".join(str(p.prefix) for p in o.ra_prefixes)))
        label = _table(o.name, f"VXLAN overlay · VNI {o.vni}", rows)
        out.append(f"  {quote('net:' + o.name)} " + _attrs(mark(f"net:{o.name}", OVERLAY), label))
        carrier = {"style": "dashed", "color": "#3c8d5a", "fontcolor": "#3c8d5a",
                   "label": f"VXLAN over {o.underlay}\nmax overlay MTU {budget}"}
        out.append(f"  {quote('net:' + o.name)} -> {quote('net:' + o.underlay)} "
                   + _attrs(mark(f"carrier:{o.name}", carrier)))

    iscsi = plan(topo)
    ports: dict[tuple[str, str], str] = {}  # (element, net) -> the table port of that link
    for entry, nodes in _groups(topo).items():
        first = nodes[0]
        kind = _kind(topo, first)
        rows = []
        for i, lk in enumerate(first.links):
            ports[(entry, lk.net.name)] = f"l{i}"
            # replicas are expanded from one entry: each has the first one's links
            rows.append((f"l{i}", lk.device, _addresses([n.attached(lk.net.name) for n in nodes])))
        if iscsi is not None and kind == "storage":
            rows.append((None, "iSCSI", iscsi.target_iqn))
        sub = " · ".join((kind if kind != "host" else first.role, first.platform, first.kind))
        title = entry if len(nodes) == 1 else f"{nodes[0].name} … {nodes[-1].name} (×{len(nodes)})"
        eid = f"node:{entry}"
        out.append(f"  {quote(eid)} " + _attrs(mark(eid, {"shape": SHAPES[kind], "fillcolor": FILL[kind],
                                                          "color": "#333333"}), _table(title, sub, rows)))  # fmt: skip
        for lk in first.links:
            lid = f"link:{entry}:{lk.net.name}"
            style = {"color": "#3c8d5a"} if lk.is_overlay else {}
            out.append(f"  {quote(eid)}:{quote(ports[(entry, lk.net.name)])}:e -> {quote('net:' + lk.net.name)} "
                       + _attrs(mark(lid, style)))  # fmt: skip
        for p in first.anyip:
            aid = f"anyip:{entry}:{p}"
            out.append(f"  {quote(aid)} " + _attrs(mark(aid, {**ANYIP, "label": f"AnyIP {p}\nlocal route on lo"})))
            owns = {"id": f"{aid}:owner", "style": "dotted", "color": "#b08800"}
            out.append(f"  {quote(eid)} -> {quote(aid)} " + _attrs(owns))

    if iscsi is not None:
        owner = _owner(topo)
        ini, tgt = owner[iscsi.initiator_node], owner[iscsi.target_node]
        for k, (portal, seg) in enumerate(zip(iscsi.portals, iscsi.segments, strict=True)):
            pid = f"iscsi:{portal}"
            src = f"{quote('node:' + ini)}:{quote(ports[(ini, seg)] + 'w')}:w"
            dst = f"{quote('node:' + tgt)}:{quote(ports[(tgt, seg)] + 'w')}:w"
            label = f"iSCSI path {k + 1}\n{portal}:{PORT} via {seg}"
            out.append(f"  {src} -> {dst} " + _attrs(mark(pid, {**ISCSI_PATH, "label": label})))
    out.append("}")
    return "\n".join(out) + "\n"


def svg(dot: str, timeout: float = SVG_TIMEOUT) -> str:
    """Lay `dot` out as SVG with Graphviz. The SVG goes to a file: proc merges dot's warnings
    on stderr into its output."""
    if shutil.which("dot") is None:
        raise BuildFailed("Graphviz `dot` is not installed (Debian package graphviz)")
    with tempfile.TemporaryDirectory(prefix="builder-dot-") as tmp:
        out = Path(tmp) / "fabric.svg"
        proc.run(["dot", "-Tsvg", "-o", out], stdin_data=dot.encode(), timeout=timeout, what="dot -Tsvg")
        return out.read_text()


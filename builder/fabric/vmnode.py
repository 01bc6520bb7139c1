"""Configure a VM node of the fabric from inside the guest, through its executor.

On this host every segment (a VLAN too) is a bridge the guest sees untagged on its own NIC,
so the guest needs no VLAN device: each NIC, found by its MAC (the link's hw_id), is renamed
to the device name the fabric gives it, then the same `ip -batch` plan a namespace node gets
adds addresses, VXLANs, AnyIP and routes.
"""

from __future__ import annotations

from .. import templates
from ..core.results import CaseResult
from .checks import CheckFailed, Executor, case
from .netns import node_script, node_sysctls
from .validate import ResolvedNode, Topology


def script(topo: Topology, node: ResolvedNode) -> str:
    sysctls = node_sysctls(topo, node)
    pre = [s for s in sysctls if ".default." in s or "forward" in s]
    renames = [(lk.hw_id, lk.device) for lk in node.links if not lk.is_overlay]
    return templates.render("fabric/vm-network.sh.j2", pre=pre, post=[s for s in sysctls if s not in pre],
                            renames=renames, batch=node_script(node))  # fmt: skip


def configure(topo: Topology, node: ResolvedNode, run: Executor, timeout: float = 60) -> CaseResult:
    """A case of its own, so a guest that cannot be configured says why in the report."""

    def apply() -> str:
        rc, out, err = run(["/bin/sh", "-c", script(topo, node)], timeout)
        if rc:
            raise CheckFailed(f"rc {rc}\n{out}{err}")
        return out + err

    return case(f"setup/{node.name}/network", apply)

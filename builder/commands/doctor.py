"""`builder doctor`: what this host can do and why."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from rich.table import Table

from .. import host
from ..console import emit_json, err
from ..runner import probes

EXAMPLES = """\b
Examples:
  builder doctor
  builder doctor --json | jq .kvm_usable
  builder doctor --refresh      probe KVM again instead of reusing this boot's answer"""


def report(refresh: bool) -> dict:
    kvm = host.kvm_probe(refresh=refresh)
    free = shutil.disk_usage(Path.home())
    virt = probes.probe_host()
    return {
        **virt,
        "kvm_usable": kvm.usable,
        "kvm_reason": kvm.reason,
        "kvm_probe_seconds": round(kvm.seconds, 2),
        "accelerator": "kvm" if kvm.usable else "tcg",
        "tools": host.tool_versions(),
        "free_disk_bytes": free.free,
    }


@click.command(name="doctor", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--refresh", is_flag=True, help="Re-run the KVM boot probe.")
def doctor(as_json: bool, refresh: bool) -> None:
    """Probe the host: is KVM usable (by booting a tiny guest, not by /dev/kvm), tools, disk."""
    r = report(refresh)
    if as_json:
        emit_json(r)
        return
    t = Table("check", "result", show_header=False)
    t.add_row("KVM usable", ("[green]yes[/] " if r["kvm_usable"] else "[yellow]no[/] ") + r["kvm_reason"])
    t.add_row("accelerator", r["accelerator"])
    t.add_row("CPU virt flag", str(r["cpu_virt_flag"] or "none (no vmx/svm: no nested KVM)"))
    t.add_row("nested KVM", {True: "enabled", False: "disabled", None: "unknown"}[r["nested"]])
    vk = r["virtualbox_kvm"]
    if vk["conflict"]:
        t.add_row("VirtualBox vs KVM", "[yellow]conflict[/] " + vk["reason"] + "\nfix:\n  " + "\n  ".join(vk["fix"]))
    for name, v in r["tools"].items():
        t.add_row(name, v if v != "missing" else "[red]missing[/]")
    t.add_row("free disk", f"{r['free_disk_bytes'] / 2**30:.1f} GiB")
    err.print(t)


COMMANDS = [doctor]

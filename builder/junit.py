"""Check results as JUnit XML (GitLab `artifacts:reports:junit`) and a readable summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from rich.table import Table

from .core.results import CaseResult


def to_junit(suites: dict[str, list[CaseResult]], name: str = "builder") -> str:
    """One <testsuite> per suite (boot, fabric, ...), each case with its evidence."""
    total = sum(len(cases) for cases in suites.values())
    failed = sum(not c.passed for cases in suites.values() for c in cases)
    root = ET.Element("testsuites", name=name, tests=str(total), failures=str(failed))
    for suite, cases in suites.items():
        ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                           failures=str(sum(not c.passed for c in cases)), errors="0",
                           time=f"{sum(c.seconds for c in cases):.3f}")  # fmt: skip
        for c in cases:
            group, _, _ = c.name.partition("/")
            tc = ET.SubElement(ts, "testcase", classname=f"{suite}.{group}", name=c.name, time=f"{c.seconds:.3f}")
            if not c.passed:
                f = ET.SubElement(tc, "failure", message=(c.evidence.splitlines() or [""])[0][:200])
                f.text = c.evidence
            ET.SubElement(tc, "system-out").text = c.evidence
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def summary(cases: list[CaseResult]) -> Table:
    t = Table(title=f"{sum(c.passed for c in cases)}/{len(cases)} checks passed", show_edge=False)
    for col in ("", "check", "s", "evidence"):
        t.add_column(col, overflow="fold")
    for c in cases:
        mark = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        last = (c.evidence.strip().splitlines() or [""])[-1]
        t.add_row(mark, c.name, f"{c.seconds:.2f}", last[:90])
    return t

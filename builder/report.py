"""report.html: one self-contained page a trainer or a CI user opens instead of a terminal log.

It shows what was built from what (image, version, inputs hash, git revision, archive state),
where the time went (stages, cache hits), every test case with its evidence (failed cases
first), the fabric picture with failed checks marked, the files with their sha256 and the
packages with what changed since the previous version. It is written for a failed build too,
where it matters most.

Everything on the page comes from a manifest, which is untrusted text: the template escapes
every value (autoescape on for this template), and the fabric SVG is inlined only after its
XML is parsed and stripped of anything active. Nothing is fetched: CSS is inline, there is no
script.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree
from markupsafe import Markup

from . import templates
from .publish.changes import package_changes
from .publish.manifest import Manifest

TEMPLATE = "report/report.html.j2"
REPORT = "report.html"
EVIDENCE_MAX = 64 * 1024  # characters of one case's evidence on the page; the manifest keeps it all
SVG_MAX = 4 * 1024 * 1024
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def failed_checks(manifest: Manifest) -> set[str]:
    """Names of every failed case, for `fabric_dot(topology, failed=...)`."""
    return {c.name for s in manifest.tests.values() for c in s.cases if not c.passed}


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def inline_svg(svg: str) -> Markup:
    """The <svg> element of Graphviz's output, safe to inline: parsed as XML (no entities,
    no network), without scripts, foreign objects, event handlers or non-local links, and
    sized by CSS from its viewBox."""
    if len(svg) > SVG_MAX:
        raise ValueError(f"fabric SVG larger than {SVG_MAX} characters")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True)
    root = etree.fromstring(svg.encode(), parser)
    if root.tag != f"{{{SVG_NS}}}svg":
        raise ValueError("fabric picture is not an SVG document")
    for el in list(root.iter()):
        if not isinstance(el.tag, str):  # processing instructions
            el.getparent().remove(el)
            continue
        if etree.QName(el).localname in ("script", "foreignObject"):
            el.getparent().remove(el)
            continue
        for attr in list(el.attrib):
            name = etree.QName(attr).localname.lower()
            if name.startswith("on") or (name == "href" and not el.attrib[attr].startswith("#")):
                del el.attrib[attr]
    for attr in ("width", "height"):
        root.attrib.pop(attr, None)
    root.set("role", "img")
    root.set("aria-label", "fabric topology")
    return Markup(etree.tostring(root, encoding="unicode"))


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _evidence(text: str) -> str:
    if len(text) <= EVIDENCE_MAX:
        return text
    return f"{text[:EVIDENCE_MAX]}\n… {len(text) - EVIDENCE_MAX} more characters in manifest.json"


def _stages(m: Manifest) -> list[dict]:
    """Stages in run order with their place on one time axis (percent of the total)."""
    total = sum(m.stages.values()) or 1.0
    out, start = [], 0.0
    for name, seconds in m.stages.items():
        out.append({"name": name, "seconds": duration(seconds), "cached": name in m.cached_stages,
                    "left": round(100 * start / total, 2), "width": round(100 * seconds / total, 2)})  # fmt: skip
        start += seconds
    return out


def _verdict_line(v: dict) -> str:
    """Where a suite's verdict was made: in this build, or reused from an earlier run."""
    if not isinstance(v, dict):
        return _text(v)
    if v.get("ran"):
        return f"ran in this build: run {v.get('run_id')} on {v.get('host')} ({v.get('accelerator')}) at {v.get('at')}"
    src = v.get("reused_from") or {}
    return f"reused from run {src.get('run_id')} on {src.get('host')} at {src.get('at')}"


def render_report(manifest: Manifest, *, fabric_svg: str | None, previous: Manifest | None) -> str:
    """The page for `manifest`; `fabric_svg` is `fabric.render.dot.svg(...)` output (failed
    checks marked) or None; `previous` is the version before it, for package changes."""
    m = manifest
    extra = {k: v for k, v in (m.model_extra or {}).items()}
    archive = m.archive or extra.pop("archive", None)
    if m.content_hash:
        extra["content_hash"] = m.content_hash
    for suite_name, v in sorted(m.verdicts.items()):
        extra[f"{suite_name}_verdict"] = _verdict_line(v)
    suites: list[dict[str, Any]] = []  # the template's rows
    for name, suite in m.tests.items():
        cases = [{"name": c.name, "passed": c.passed, "seconds": duration(c.seconds), "evidence": _evidence(c.evidence)}
                 for c in suite.cases]  # fmt: skip
        suites.append({"name": name, "passed": suite.passed, "cases": cases,
                       "failed": sum(not c["passed"] for c in cases)})  # fmt: skip
    failures = [(s["name"], c) for s in suites for c in s["cases"] if not c["passed"]]
    verdict = "passed" if m.all_passed else ("failed" if m.tests else "untested")
    return templates.render(
        TEMPLATE,
        m=m,
        verdict=verdict,
        archive=(sorted((str(k), _text(v)) for k, v in archive.items()) if isinstance(archive, dict)
                 else None if archive is None else _text(archive)),  # fmt: skip
        provenance=sorted((str(k).replace("_", " ").capitalize(), _text(v)) for k, v in extra.items()),
        stages=_stages(m),
        total=duration(sum(m.stages.values())),
        suites=suites,
        failures=failures,
        cases=sum(len(s["cases"]) for s in suites),
        fabric_svg=inline_svg(fabric_svg) if fabric_svg else None,
        files=[{"name": f.name, "format": f.format or "", "size": size(f.size), "bytes": f.size, "sha256": f.sha256}
               for f in m.files],  # fmt: skip
        packages=sorted(m.packages.items()),
        previous=previous.version if previous else None,
        changes=package_changes(previous.packages, m.packages) if previous else None,
    )

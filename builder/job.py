"""The main job, `builder vm NAME`: check, build, test, decide the version, export, publish.

Below the CLI (which only parses arguments and shows results): the image name goes in once,
a `JobResult` comes out. The version follows `publish.versions`: content unchanged since the
newest published version means nothing is published and the job succeeds ("current"); changed
content publishes image.yaml's version, or a derived rebuild version when that one exists.
Where the image goes to GitLab, the registry is the record of what is published (runners share
no filesystem); otherwise the local store is.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from . import preflight, vbox_suite
from .atomic import place
from .build import Build, Options, Outcome, provenance, timestamp
from .core.digests import sha256_file
from .core.errors import BuildFailed, UserError
from .core.runs import Run, live_runs
from .fabric.render import dot
from .junit import to_junit
from .lab.plan import has_lab
from .progress import Reporter
from .project import Project
from .publish import gitlab, local, versions
from .publish.changes import package_changes
from .publish.gitlab_target import GitLabTarget
from .publish.manifest import JUNIT, MANIFEST, SUMS, FileEntry, Manifest, parse_manifest
from .report import REPORT, failed_checks, render_report
from .spec import ImageSpec, load_image
from .vagrant import catalog


@dataclass(frozen=True)
class JobRequest:
    project: Project
    name: str
    output: Path
    options: Options
    version: str | None = None  # explicit: publish exactly this version
    force: bool = False  # rebuild every stage and replace the version decided on
    gitlab: GitLabTarget | None = None
    release: bool = True  # with gitlab: also create the release (CI's publish job does it instead)
    junit: Path | None = None
    reports: Path | None = None  # the small proof for CI artifacts: junit.xml, manifest.json, SHA256SUMS


@dataclass
class JobResult:
    state: Literal["published", "current"]
    manifest: Manifest
    decision: versions.Decision
    directory: Path | None = None  # the version in the local store, when it is there
    gitlab: gitlab.PublishResult | None = None
    notes: list[str] = field(default_factory=list)


def make_manifest(project: Project, o: Outcome, durations: dict[str, float], content: str | None,
                  previous: Manifest | None) -> Manifest:
    """The record of a build; for a failed one too (no files, the stages that ran)."""
    return Manifest(
        name=o.spec.name,
        version=o.version,
        input_hash=o.keys.get("export") or next(reversed(o.keys.values()), ""),
        git_revision=project.git_revision(),
        built_at=timestamp(),
        accelerator=o.accelerator,
        tools=o.tools,
        packages=o.packages,
        files=[FileEntry(name=f["name"], size=f["size"], sha256=f["sha256"], format=fmt)
               for fmt, f in o.files.items()],
        stages=durations,
        cached_stages=o.cached,
        tests=o.tests,
        content_hash=content,
        archive=o.archive,
        verdicts=o.verdicts,
        previous_version=previous.version if previous else None,
        package_changes=asdict(package_changes(previous.packages, o.packages)) if previous else {},
    )


def junit_xml(o: Outcome) -> str:
    return to_junit({f"{o.spec.name}.{k}": suite.cases for k, suite in o.tests.items()}, name=o.spec.name)


def report_html(manifest: Manifest, spec: ImageSpec, previous: Manifest | None) -> str:
    """The one-page report, with the fabric picture (failed checks marked) where Graphviz is."""
    try:
        topo = preflight.fabric_of(spec)[1]
        svg: str | None = dot.svg(dot.fabric_dot(topo, failed_checks(manifest)))
    except (BuildFailed, UserError):
        svg = None  # the page says there is no picture; the verdicts stand on their own
    return render_report(manifest, fabric_svg=svg, previous=previous)


def publish_local(o: Outcome, manifest: Manifest, output: Path, run: Run, force: bool,
                  previous: Manifest | None = None) -> Path:
    """Place the exported files, manifest, JUnit and SHA256SUMS in the store, all or nothing."""
    s = o.spec
    required = {"boot", "fabric"} | ({"lab"} if has_lab(s) else set())
    if not manifest.all_passed or set(manifest.tests) - {"virtualbox"} != required:
        raise BuildFailed(f"not published: {', '.join(sorted(required))} tests must all pass")
    local.check_free(output, s.name, o.version, force)  # again: another run may have published meanwhile
    staging = local.staging_dir(output, s.name, o.version, run.id)
    try:
        for f in o.files.values():
            place(o.paths["export"] / f["name"], staging / f["name"])
        (staging / MANIFEST).write_text(manifest.dumps())
        (staging / JUNIT).write_text(junit_xml(o))
        (staging / REPORT).write_text(report_html(manifest, s, previous))
        sums = {f["name"]: f["sha256"] for f in o.files.values()}
        sums.update((n, sha256_file(staging / n)) for n in (MANIFEST, JUNIT, REPORT))
        (staging / SUMS).write_text(local.sha256sums(sums))
        final = local.commit(staging, output, s.name, o.version, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    boxes = {k.removesuffix(".box"): (f["name"], f["sha256"]) for k, f in o.files.items() if k.endswith(".box")}
    if boxes:  # `vagrant box add <store>/<name>.json` sees every published version
        catalog.publish_local_catalog(output, s.name, o.version, boxes, s.description)
    return final


class _Published:
    """What is published of one image, from the local store and (when targeted) the registry."""

    def __init__(self, req: JobRequest, spec: ImageSpec):
        self.req, self.name = req, spec.name
        self.local = local.published(req.output, spec.name)
        self.remote = gitlab.remote_versions(req.gitlab, spec.name) if req.gitlab else []
        self._manifests: dict[str, Manifest | None] = {}

    def manifest(self, version: str) -> Manifest | None:
        if version not in self._manifests:
            d = local.version_dir(self.req.output, self.name, version)
            if (d / MANIFEST).is_file():
                self._manifests[version] = parse_manifest(d / MANIFEST)
            elif self.req.gitlab and version in self.remote:
                self._manifests[version] = gitlab.remote_manifest(self.req.gitlab, self.name, version)
            else:
                self._manifests[version] = None
        return self._manifests[version]

    def contents(self, base: str) -> dict[str, str | None]:
        """version -> content hash; read (possibly from the registry) for the newest of the family only."""
        known: dict[str, str | None] = {v: None for v in self.remote} if self.req.gitlab else {}
        known.update(self.local)
        fam = versions.family(base, known)
        if fam and known[fam[-1]] is None and (m := self.manifest(fam[-1])) is not None:
            known[fam[-1]] = m.content_hash
        return known


def _write_reports(dest: Path, files: dict[str, bytes]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (dest / name).write_bytes(data)


def _virtualbox_suite(b: Build, reporter: Reporter) -> None:
    """Where VirtualBox works (runners tagged `virtualbox`), the exported OVA must import, boot and
    pass its smoke checks in VirtualBox itself before anything is published. Elsewhere: a note."""
    user = vbox_suite.login_user(b.spec)
    try:
        vbox_suite.vbox_version("VBoxManage")
    except vbox_suite.NoVirtualBox as e:
        reporter.note(f"virtualbox suite not run: {e.message}")
        return
    if user is None:
        reporter.note("virtualbox suite not run: the image has no user with a password to log in with")
        return
    ova = b.out.paths["export"] / b.out.files["ova"]["name"]
    with reporter.stage("virtualbox", "import, boot and smoke-test the OVA in VirtualBox"):
        suite = vbox_suite.run_suite(ova, user=user.name, password=user.password, version=b.out.version, run=b.run)
    b.out.tests["virtualbox"] = suite
    b.out.verdicts["virtualbox"] = {"ran": True, **provenance(b.run, b.out.accelerator)}
    if not suite.passed:
        failed = ", ".join(c.name for c in suite.cases if not c.passed)
        raise BuildFailed(f"virtualbox suite failed: {failed}")


def _failure_report(req: JobRequest, b: Build, reporter: Reporter, progress: Callable[[str], None]) -> None:
    """A failed build's report (failed case first) where the user looks: --reports, else the store."""
    m = make_manifest(req.project, b.out, reporter.durations, None, None)
    dest = req.reports or req.output / b.spec.name
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / (REPORT if req.reports else f"failed-{b.run.id}.html")
    path.write_text(report_html(m, b.spec, None))
    progress(f"report of the failed build: {path}")


def _current_proof(req: JobRequest, name: str, version: str) -> dict[str, bytes]:
    """manifest.json, SHA256SUMS and report.html of a published version, for CI's artifacts."""
    d = local.version_dir(req.output, name, version)
    out = {}
    for f in (MANIFEST, SUMS, REPORT):
        data = (d / f).read_bytes() if (d / f).is_file() else None
        if data is None and req.gitlab:
            data = gitlab.remote_file(req.gitlab, name, version, f)
        if data is not None:
            out[f] = data
    return out


def run_vm(req: JobRequest, reporter: Reporter, progress: Callable[[str], None] = lambda line: None) -> JobResult:
    explicit = req.version is not None
    spec = load_image(req.name, req.project.images_dir, version=req.version)
    checked = preflight.check(spec, req.project.root, mirror=req.options.mirror)  # before any work
    if explicit:
        local.check_free(req.output, spec.name, spec.version, req.force)
    published = _Published(req, spec)
    local.sweep_partials(req.output, set(live_runs()))

    with Run() as run:
        b = Build(spec, run, req.options, reporter, archive=checked.archive)
        try:
            b.image()
            with b.alongside(b.box, b.convert):
                b.boot_test()
                b.fabric_test()
                b.lab_test()
        except BuildFailed:
            _failure_report(req, b, reporter, progress)
            raise
        finally:
            if b.out.tests:
                junit = junit_xml(b.out).encode()
                if req.junit:
                    req.junit.write_bytes(junit)
                if req.reports:
                    _write_reports(req.reports, {JUNIT: junit})
        content = b.content_hash()
        decision = versions.decide(spec.version, content, published.contents(spec.version),
                                   explicit=explicit, force=req.force)
        previous = published.manifest(decision.previous) if decision.previous else None
        if decision.current:
            assert previous is not None
            result = JobResult("current", previous, decision, notes=[decision.reason])
            d = local.version_dir(req.output, spec.name, decision.version)
            result.directory = d if d.is_dir() else None
        else:
            reporter.note(f"version {decision.version}: {decision.reason}")
            b.export(decision.version)
            _virtualbox_suite(b, reporter)
            manifest = make_manifest(req.project, b.out, reporter.durations, content, previous)
            result = JobResult("published", manifest, decision,
                               publish_local(b.out, manifest, req.output, run, req.force, previous))

    if req.gitlab is not None and result.directory is not None:
        result.gitlab = gitlab.publish_gitlab(result.directory, req.gitlab, release=req.release, progress=progress)
    if req.reports:
        _write_reports(req.reports, _current_proof(req, spec.name, result.decision.version))
    return result

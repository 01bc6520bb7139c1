"""Pipeline schedules from a file (ci/schedules.yaml), kept in sync through the GitLab API.

A schedule is identified by its description. `plan` (pure) compares the file with the server's
schedules and lists changes; `apply` carries them out. Schedules the file does not name are left
alone unless pruning was asked for. A named schedule is owned by the file entirely, variables
included: a variable the file drops is deleted.

GitLab lets only a schedule's owner edit it: a schedule someone else owns is taken over
(POST .../take_ownership) before it is edited, and the plan says so. Two schedules on the
server with one description are reported; --prune keeps one (ours, else the oldest) and
deletes the rest. Variable values may be secrets: plans show `(new)`, `(changed)`,
`(removed)`, never a value.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .core.errors import UserError
from .publish.gitlab_target import GitLabTarget, RetryPolicy, api_errors
from .spec import load_yaml, validate

FIELDS = ("ref", "cron", "cron_timezone", "active")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: Annotated[str, Field(min_length=1, max_length=255)]
    cron: str
    cron_timezone: str = "UTC"
    ref: str
    active: bool = True
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,255}$")], str] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        parts = v.split()
        if len(parts) != 5 or not all(CRON_FIELD.match(p) for p in parts) or not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a five-field cron expression (minute hour day month weekday, in range)")
        return v

    @field_validator("cron_timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            if not re.fullmatch(r"[A-Za-z0-9_+-]{1,64}(/[A-Za-z0-9_+-]{1,64}){0,2}", v):
                raise ValueError(v)
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return v

    @field_validator("ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        return short_ref(v)


class ScheduleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedules: tuple[Schedule, ...]

    @field_validator("schedules")
    @classmethod
    def _unique(cls, v: tuple[Schedule, ...]) -> tuple[Schedule, ...]:
        seen: set[str] = set()
        for s in v:
            if s.description in seen:
                raise ValueError(f"description {s.description!r} appears twice; it identifies the schedule")
            seen.add(s.description)
        return v


def short_ref(ref: str) -> str:
    # GitLab may store a branch as refs/heads/<name>; the file names the branch.
    return ref.removeprefix("refs/heads/")


def load(path: Path) -> ScheduleFile:
    return validate(ScheduleFile, load_yaml(path), path)


@dataclass
class Change:
    action: str  # create | update | unchanged | delete | keep
    description: str
    id: int | None = None
    fields: dict[str, list[Any]] = field(default_factory=dict)  # name -> [old, new]
    # key -> [old, new], None = absent; values stay in here, never in as_dict() or line()
    variables: dict[str, list[str | None]] = field(default_factory=dict)
    want: Schedule | None = None
    take_from: str | None = None  # the owner we take the schedule over from before editing it
    duplicate_of: int | None = None  # a second schedule with a description the plan already keeps

    def variable_changes(self) -> dict[str, str]:
        return {k: "new" if o is None else "removed" if n is None else "changed"
                for k, (o, n) in self.variables.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "description": self.description, "id": self.id,
                "fields": self.fields, "variables": self.variable_changes(),
                "take_ownership_from": self.take_from, "duplicate_of": self.duplicate_of}

    def line(self) -> str:
        sign = {"create": "+", "update": "~", "unchanged": "=", "delete": "-", "keep": " "}[self.action]
        diffs = [f"{k}: {o!r} -> {n!r}" for k, (o, n) in self.fields.items()]
        diffs += [f"${k} ({what})" for k, what in self.variable_changes().items()]
        if self.duplicate_of is not None:
            note = f" (#{self.id}, a duplicate of #{self.duplicate_of}" + ("" if self.action == "delete" else
                                                                            "; --prune deletes it") + ")"
        elif self.action == "keep":
            note = " (not in the file; --prune deletes it)"
        else:
            note = ""
        if self.take_from:
            note += f" (taking ownership from {self.take_from})"
        return f"{sign} {self.action} {self.description!r}{note}" + ("; " + "; ".join(diffs) if diffs else "")


def _owner(s: dict[str, Any]) -> str | None:
    return (s.get("owner") or {}).get("username")


def plan(wanted: ScheduleFile, current: list[dict[str, Any]], prune: bool = False,
         me: str | None = None) -> list[Change]:
    """current: the server's schedules as GitLab returns a single schedule (with `variables`);
    me: the token's user name, to know which schedules must be taken over before an edit."""
    by_desc: dict[str, dict[str, Any]] = {}
    extras: list[dict[str, Any]] = []
    # per description keep ours, else the oldest; the others are duplicates
    for s in sorted(current, key=lambda s: (me is None or _owner(s) != me, s["id"])):
        if s["description"] in by_desc:
            extras.append(s)
        else:
            by_desc[s["description"]] = s
    kept = dict(by_desc)
    changes = []
    for want in wanted.schedules:
        have = by_desc.pop(want.description, None)
        if have is None:
            changes.append(Change("create", want.description, None,
                                  {k: [None, getattr(want, k)] for k in FIELDS},
                                  {k: [None, v] for k, v in sorted(want.variables.items())}, want))
            continue
        norm = {**have, "ref": short_ref(have["ref"])}
        fields = {k: [norm.get(k), getattr(want, k)] for k in FIELDS if norm.get(k) != getattr(want, k)}
        have_vars = {v["key"]: v["value"] for v in have.get("variables", [])}
        keys = sorted(set(have_vars) | set(want.variables))
        variables = {k: [have_vars.get(k), want.variables.get(k)] for k in keys
                     if have_vars.get(k) != want.variables.get(k)}
        action = "update" if fields or variables else "unchanged"
        take_from = _owner(have) if action == "update" and me is not None and _owner(have) != me else None
        changes.append(Change(action, want.description, have["id"], fields, variables, want, take_from))
    for s in by_desc.values():
        changes.append(Change("delete" if prune else "keep", s["description"], s["id"]))
    for s in sorted(extras, key=lambda s: s["id"]):
        changes.append(Change("delete" if prune else "keep", s["description"], s["id"],
                              duplicate_of=kept[s["description"]]["id"]))
    return changes


def current_schedules(project: Any, descriptions: set[str], policy: RetryPolicy) -> list[dict[str, Any]]:
    """Every schedule; the ones the file names fetched one by one, since only that carries variables."""
    call = policy.retrying()
    out = []
    for s in call(lambda: list(project.pipelineschedules.list(iterator=True))):
        if s.description in descriptions:
            s = call(project.pipelineschedules.get, s.id)
        out.append(s.asdict())
    return out


def apply(project: Any, changes: list[Change], policy: RetryPolicy) -> None:
    call = policy.retrying()
    for c in changes:
        if c.action == "delete":
            call(project.pipelineschedules.delete, c.id)
        if c.action not in ("create", "update") or c.want is None:
            continue
        attrs = {k: getattr(c.want, k) for k in FIELDS}
        if c.action == "create":
            sched = call(project.pipelineschedules.create, {"description": c.want.description, **attrs})
        else:
            sched = project.pipelineschedules.get(c.id, lazy=True)
            if c.take_from:  # GitLab lets only the owner edit a schedule or its variables
                call(sched.take_ownership)
            if c.fields:
                call(project.pipelineschedules.update, c.id, {k: attrs[k] for k in c.fields})
        for key, (old, new) in c.variables.items():
            if new is None:
                call(sched.variables.delete, key)
            elif old is None:
                call(sched.variables.create, {"key": key, "value": new})
            else:
                call(sched.variables.update, key, {"key": key, "value": new})


def sync_file(path: Path, target: GitLabTarget, *, prune: bool = False, dry_run: bool = False,
              policy: RetryPolicy = RetryPolicy()) -> list[Change]:
    wanted = load(path)
    if target.token_kind == "job":
        raise UserError("managing schedules needs a personal or project access token, not CI_JOB_TOKEN",
                        field="GITLAB_PRIVATE_TOKEN")
    gl = target.connect()
    project = gl.projects.get(target.project, lazy=True)
    with api_errors(target, f"syncing schedules of {target.project}"):
        policy.retrying()(gl.auth)
        me = gl.user.username if gl.user is not None else None
        current = current_schedules(project, {s.description for s in wanted.schedules}, policy)
        changes = plan(wanted, current, prune, me)
        if not dry_run:
            apply(project, changes, policy)
    return changes

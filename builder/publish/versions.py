"""Which version a build publishes as, so that a scheduled rebuild is never red because a version exists.

The first build of image.yaml's version publishes it as is. A later build whose *content* differs
(new Debian packages, changed templates or code — `Build.content_hash`) publishes a derived rebuild
version, `<version>.<n>`: a dotted number is valid as a GitLab generic package version, a git
tag, a file name and a Vagrant box version (Gem::Version; `+build` metadata is not). A build
whose content equals the newest published one publishes nothing: that version is current.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.errors import UserError

_NUM = re.compile(r"\d+")


def sort_key(version: str) -> tuple:
    """Release order: numbers compare as numbers; `1.0.0-rc1` sorts before `1.0.0`."""
    release, _, pre = version.partition("-")
    parts = tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+]", release))
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return parts, 0 if pre else 1, pre_key


def rebuild_number(base: str, version: str) -> int | None:
    """0 for the base version itself, n for `<base>.<n>`, None for another family."""
    if version == base:
        return 0
    rest = version.removeprefix(base + ".")
    return int(rest) if rest != version and _NUM.fullmatch(rest) else None


def family(base: str, versions: Iterable[str]) -> list[str]:
    """The base version and its rebuilds, oldest first."""
    numbered = ((n, v) for v in versions if (n := rebuild_number(base, v)) is not None)
    return [v for _, v in sorted(numbered, key=lambda nv: nv[0])]


@dataclass(frozen=True)
class Decision:
    version: str
    current: bool  # content unchanged: nothing to publish
    previous: str | None  # the newest published version of the family, for release notes
    reason: str


def decide(base: str, content: str, published: dict[str, str | None], *, explicit: bool = False,
           force: bool = False) -> Decision:
    """published: version -> its content hash (None where an older manifest has none).

    explicit: the version was given on the command line and is used as is; force: republish
    over an existing version instead of deriving a new one.
    """
    fam = family(base, published)
    latest = fam[-1] if fam else None
    if explicit:
        if base in published and published[base] == content and not force:
            return Decision(base, True, base, f"{base} is published with this content")
        if base in published and not force:
            raise UserError(f"{base} is already published with other content; versions are never "
                            "overwritten (use --force to replace it)", field="--version")
        return Decision(base, False, latest, "version given")
    if latest is not None and published[latest] == content and not force:
        return Decision(latest, True, latest, f"{latest} is published with this content")
    if force and latest is not None:
        return Decision(latest, False, latest, f"--force: replacing {latest}")
    if latest is None:
        return Decision(base, False, None, "first build of this version")
    n = max(rebuild_number(base, v) or 0 for v in fam) + 1
    return Decision(f"{base}.{n}", False, latest, f"content changed since {latest}")

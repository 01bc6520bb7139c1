"""What changed in an image's packages from one published version to the next: the build
report shows it and release notes can reuse it. Versions compare as dpkg compares them
(epochs, `~` sorting first), through python-debian."""

from __future__ import annotations

from dataclasses import dataclass

from debian.debian_support import version_compare


@dataclass(frozen=True)
class PackageChanges:
    added: dict[str, str]  # name -> version
    removed: dict[str, str]  # name -> the version it had
    upgraded: dict[str, tuple[str, str]]  # name -> (old, new)
    downgraded: dict[str, tuple[str, str]]  # name -> (old, new)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded)


def _newer(old: str, new: str) -> bool:
    try:
        return version_compare(new, old) > 0
    except ValueError:  # not a Debian version (a hand-edited manifest): plain order still says something
        return new > old


def package_changes(old: dict[str, str], new: dict[str, str]) -> PackageChanges:
    """Compare two `name -> version` maps (Manifest.packages); every part is sorted by name."""
    changed = sorted(n for n in old.keys() & new.keys() if old[n] != new[n])
    return PackageChanges(
        added={n: new[n] for n in sorted(new.keys() - old.keys())},
        removed={n: old[n] for n in sorted(old.keys() - new.keys())},
        upgraded={n: (old[n], new[n]) for n in changed if _newer(old[n], new[n])},
        downgraded={n: (old[n], new[n]) for n in changed if not _newer(old[n], new[n])},
    )

"""What changed in an image's packages between two published versions (release notes, report)."""

from __future__ import annotations


def package_changes(old: dict[str, str], new: dict[str, str]) -> dict[str, dict]:
    """{added: {name: version}, removed: {name: version}, upgraded: {name: [old, new]}}, each sorted."""
    return {
        "added": {p: new[p] for p in sorted(set(new) - set(old))},
        "removed": {p: old[p] for p in sorted(set(old) - set(new))},
        "upgraded": {p: [old[p], new[p]] for p in sorted(set(old) & set(new)) if old[p] != new[p]},
    }

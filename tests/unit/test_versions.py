"""Version policy for rebuilds and the package diff behind release notes."""

import pytest

from builder.core.errors import UserError
from builder.publish.changes import package_changes
from builder.publish.gitlab import PACKAGE_VERSION_RE
from builder.publish.versions import decide, family, sort_key
from builder.spec import VERSION_RE


def test_first_build_publishes_the_spec_version():
    d = decide("1.0.0", "c1", {})
    assert (d.version, d.current, d.previous) == ("1.0.0", False, None)


def test_unchanged_content_is_current_whatever_the_archive():
    d = decide("1.0.0", "c1", {"1.0.0": "c1"})
    assert d.current and d.version == "1.0.0"
    d = decide("1.0.0", "c2", {"1.0.0": "c1", "1.0.0.1": "c2"})
    assert d.current and d.version == "1.0.0.1"


def test_changed_content_gets_the_next_rebuild_version():
    d = decide("1.0.0", "c3", {"1.0.0": "c1", "1.0.0.1": "c2", "0.9.0": "c0"})
    assert (d.version, d.current, d.previous) == ("1.0.0.2", False, "1.0.0.1")
    # 10 sorts after 9 (numbers, not text); an old manifest without a content hash is "changed"
    fam = {"1.0.0": None, **{f"1.0.0.{i}": f"c{i}" for i in range(1, 11)}}
    assert decide("1.0.0", "new", fam).version == "1.0.0.11"
    assert decide("2.0.0-rc1", "x", {"2.0.0-rc1": None}).version == "2.0.0-rc1.1"


def test_every_derived_version_is_valid_everywhere_it_goes():
    for base in ("1.0.0", "1.2.3.4", "2.0.0-rc1"):
        v = decide(base, "x", {base: "y"}).version
        assert VERSION_RE.match(v) and PACKAGE_VERSION_RE.match(v) and "/" not in v


def test_explicit_version_is_exact_and_never_overwritten_without_force():
    assert decide("1.1.0", "c", {"1.0.0": "a"}, explicit=True).version == "1.1.0"
    assert decide("1.0.0", "a", {"1.0.0": "a"}, explicit=True).current
    with pytest.raises(UserError, match="never overwritten"):
        decide("1.0.0", "b", {"1.0.0": "a"}, explicit=True)
    assert not decide("1.0.0", "b", {"1.0.0": "a"}, explicit=True, force=True).current


def test_force_replaces_the_newest_version():
    d = decide("1.0.0", "c1", {"1.0.0": "c1", "1.0.0.1": "c1"}, force=True)
    assert (d.version, d.current) == ("1.0.0.1", False)


def test_family_and_order():
    assert family("1.0", ["1.0", "1.0.2", "1.0.10", "1.1", "1.0-rc1", "1.0.x"]) == ["1.0", "1.0.2", "1.0.10"]
    assert sorted(["1.0.0", "1.0.0-rc1", "0.9.10", "0.9.9"], key=sort_key) == ["0.9.9", "0.9.10", "1.0.0-rc1",
                                                                            "1.0.0"]


def test_package_changes():
    old = {"bash": "5.2.15-2", "ceph": "16.2.11", "gone": "1"}
    new = {"bash": "5.2.15-2", "ceph": "16.2.15", "fresh": "2"}
    c = package_changes(old, new)
    assert (c.added, c.removed, c.upgraded) == ({"fresh": "2"}, {"gone": "1"}, {"ceph": ("16.2.11", "16.2.15")})

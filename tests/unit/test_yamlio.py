"""The one YAML reader: size, encoding, duplicate keys, alias expansion, depth (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import pipeline as pl
from builder import yamlio
from builder.cli import main
from builder.core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def billion_laughs() -> str:
    """Nine levels of nine aliases: 9**9 strings once expanded, ~600 bytes on disk."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for c in "bcdefghi":
        lines.append(f"{c}: &{c} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = c
    lines.append("job:\n  script: *i")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, data: str | bytes, name: str = "f.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def test_billion_laughs_fails_fast_as_bad_input(tmp_path, capsys):
    f = write(tmp_path, billion_laughs(), "bomb.yml")
    assert f.stat().st_size < 700
    with pytest.raises(UserError, match="aliases are expanded"):
        yamlio.load(f)
    assert main(["pipeline", "validate", str(f)]) == 2
    assert "bomb.yml" in capsys.readouterr().err


def test_duplicate_key_is_refused_with_its_line(tmp_path):
    f = write(tmp_path, "name: a\nversion: 1.0.0\nname: b\n")
    with pytest.raises(UserError) as e:
        yamlio.load_mapping(f)
    assert "line 3" in str(e.value) and "duplicate key 'name' (first on line 1)" in str(e.value)


def test_nested_duplicate_key_and_merge_keys(tmp_path):
    with pytest.raises(UserError, match="duplicate key 'x'"):
        yamlio.load(write(tmp_path, "a:\n  x: 1\n  x: 2\n"))
    # a merge key's override is not a duplicate: GitLab CI files use it
    doc = yamlio.load(write(tmp_path, "d: &d {x: 1, y: 2}\nj:\n  <<: *d\n  x: 3\n", "m.yaml"))
    assert doc["j"] == {"x": 3, "y": 2}


def test_non_utf8_names_file_and_line(tmp_path):
    f = write(tmp_path, b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(UserError) as e:
        yamlio.load(f)
    assert str(f) in str(e.value) and "line 2" in str(e.value) and "UTF-8" in str(e.value)


def test_size_cap(tmp_path):
    f = write(tmp_path, "a: " + "x" * yamlio.MAX_BYTES + "\n")
    with pytest.raises(UserError, match="larger than"):
        yamlio.load(f)


@pytest.mark.parametrize("text, words", [
    ("a: " + "[" * 500 + "]" * 500 + "\n", "deeper"),
    ("a: &a [*a]\n", "refers to a node that contains it"),
    ("n: " + "9" * 5000 + "\n", "not valid YAML"),
    ("d: 2024-13-45\n", "not valid YAML"),
    ("x: !!python/object:os.system ls\n", "not valid YAML"),
    ("---\na: 1\n---\nb: 2\n", "more than one YAML document"),
    ("- 1\n", "top level must be a mapping"),
])
def test_hostile_documents_are_bad_input(tmp_path, text, words):
    with pytest.raises(UserError, match=words):
        yamlio.load_mapping(write(tmp_path, text))


def test_gitlab_reference_tag_and_anchors_still_work():
    text = (".base: &base\n  script: [echo hi]\n  tags: [x]\n"
            "job:\n  <<: *base\n  before_script:\n    - !reference [.base, script]\n")
    docs = list(yamlio.load_all(text, "ci.yml", loader=pl._CILoader))
    assert docs[0]["job"]["before_script"] == [[".base", "script"]]
    assert pl.validate_ci(text, pl.vendored_schema(), "ci.yml") == []


def test_every_user_file_reader_goes_through_yamlio(tmp_path):
    from builder.fabric.validate import load as load_fabric
    from builder.schedules import load as load_schedules

    bad = write(tmp_path, b"name: x\nname: y\n")
    for loader in (load_fabric, load_schedules):
        with pytest.raises(UserError, match="duplicate key"):
            loader(bad)

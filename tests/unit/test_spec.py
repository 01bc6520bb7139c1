from pathlib import Path

import pytest

from builder.cli import main
from builder.core.errors import UserError
from builder.spec import image_names, load_image, parse_size_mib
from tests.repo import IMAGES

GOOD = """\
name: demo
version: 1.0.0
packages: [iproute2]
disk_size: 2G
provision: [p.sh.j2]
"""


def make(tmp_path: Path, text: str, name: str = "demo", template: bool = True) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "image.yaml").write_text(text)
    if template:
        (d / "p.sh.j2").write_text("#!/bin/sh\n")
    return tmp_path


def test_shipped_images_load():
    assert {"minimal", "ceph-training"} <= set(image_names(IMAGES))
    for n in image_names(IMAGES):
        spec = load_image(n, IMAGES)
        assert spec.name == n


def test_good_spec(tmp_path):
    spec = load_image("demo", make(tmp_path, GOOD))
    assert spec.disk_mib == 2048 and spec.packages == ("iproute2",)


@pytest.mark.parametrize(
    "text, field, words",
    [
        (GOOD + "colour: red\n", "colour", "unknown key"),
        (GOOD.replace("disk_size: 2G", "disk_size: lots"), "disk_size", "not a size"),
        (GOOD.replace("disk_size: 2G", "disk_size: 100M"), "disk_size", "at least 512M"),
        (GOOD.replace("version: 1.0.0", "version: v1"), "version", "invalid version"),
        (GOOD + "cpus: many\n", "cpus", "integer"),
        (GOOD + "users:\n  - name: Bad Name\n    password: x\n", "users[0].name", "pattern"),
        (GOOD.replace("[p.sh.j2]", "[missing.j2]"), "provision[0]", "not found"),
        (GOOD.replace("name: demo", "name: other"), "name", "differs"),
        (GOOD.replace("[iproute2]", "[Not_A_Package]"), "packages", "Debian package"),
        ("name: [\n", "line", "not valid YAML"),
        (GOOD + "data_disks: [20G, 1T]\n", "data_disks[1]", "not a size"),
        (GOOD + "data_disks: [512M]\n", "data_disks", "between 1G and 4096G"),
        (GOOD + "data_disks: [5000G]\n", "data_disks", "between 1G and 4096G"),
        (GOOD + "data_disks: [" + "1G, " * 9 + "]\n", "data_disks", "at most 8"),
    ],
)
def test_bad_spec_names_file_and_field(tmp_path, text, field, words):
    root = make(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_image("demo", root)
    msg = str(e.value)
    assert str(root / "demo" / "image.yaml") in msg
    assert field in msg and words in msg
    assert "\n" not in msg


def test_data_disks(tmp_path):
    spec = load_image("demo", make(tmp_path, GOOD + "data_disks: [20G, 5G, 8192M]\n"))
    assert spec.data_disk_mibs == (20480, 5120, 8192)
    assert load_image("ceph-training", IMAGES).data_disk_mibs == (20480,) * 3


def test_unknown_image_lists_known():
    with pytest.raises(UserError, match="unknown image 'nope'.*minimal"):
        load_image("nope", IMAGES)


def test_cli_bad_input_exit_2_one_line(capsys, tmp_path):
    assert main(["vm", "nope", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unknown image" in err and "Traceback" not in err
    assert main(["vm", "minimal", "--version", "1..2", "--output", str(tmp_path)]) == 2
    assert "--version" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_existing_explicit_version_refused_before_building(capsys, tmp_path):
    (tmp_path / "minimal" / "0.1.0").mkdir(parents=True)
    assert main(["vm", "minimal", "--version", "0.1.0", "--output", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("value, mib", [("2G", 2048), ("512M", 512), ("8GiB", 8192), (1024, 1024)])
def test_sizes(value, mib):
    assert parse_size_mib(value) == mib


def _commands(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help_with_examples(capsys):
    from builder.cli import app

    for argv in [(), *_commands(app)]:
        assert main([*argv, "--help"]) == 0
        assert "Examples:" in capsys.readouterr().out, f"builder {' '.join(argv)} --help has no examples"

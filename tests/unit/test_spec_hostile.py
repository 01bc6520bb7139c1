"""Issue 13: image spec values that reach a shell or a file are validated at load, the customize
hook quotes every one of them, and image templates render in jinja2's sandbox."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from builder.core.errors import UserError
from builder.image import rootfs
from builder.image.packer import render_scripts
from builder.spec import ImageSpec, User, load_image
from builder.templates import render_string

GOOD = "name: demo\nversion: 1.0.0\nprovision: [p.sh.j2]\n"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl student@lab"


def make(tmp_path: Path, text: str, template: str = "#!/bin/sh\n") -> Path:
    d = tmp_path / "demo"
    d.mkdir(exist_ok=True)
    (d / "image.yaml").write_text(text)
    (d / "p.sh.j2").write_text(template)
    return tmp_path


@pytest.mark.parametrize("extra, field", [
    ('hostname: "x; touch /tmp/p #"\n', "hostname"),
    ("hostname: -lead\n", "hostname"),
    ("hostname: " + "a" * 64 + "\n", "hostname"),
    ("users: [{name: s, password: \"a\\nroot::0:0\"}]\n", "users[0].password"),
    ("users: [{name: s, password: x, ssh_authorized_keys: [\"ssh-ed25519 AAAA x\\nKEYS\\ntouch /p\"]}]\n",
     "users[0].ssh_authorized_keys[0]"),
    ("users: [{name: s, password: x, ssh_authorized_keys: [\"command=\\\"sh\\\" ssh-rsa AAAA\"]}]\n",
     "users[0].ssh_authorized_keys[0]"),
    ("distribution: \"bookworm; rm -rf /\"\n", "distribution"),
    ("mirror: \"http://deb.debian.org/debian' x\"\n", "mirror"),
    ("mirror: ftp://deb.debian.org/debian\n", "mirror"),
    ("mirror: 'file:///srv/mirror;reboot'\n", "mirror"),
    ("mirror: \"http://a b/\"\n", "mirror"),
    ("disk_size: 999999999G\n", "disk_size"),
    ("disk_size: " + "9" * 5000 + "G\n", "disk_size"),
    ("boot_test: {checks: [{name: c, run: ls, expect: \"(\"}]}\n", "boot_test.checks[0].expect"),
    ("boot_test: {checks: [{name: c, run: \"{{ x \"}]}\n", "boot_test.checks[0].run"),
])
def test_hostile_spec_values_are_refused_at_load(tmp_path, extra, field):
    with pytest.raises(UserError) as e:
        load_image("demo", make(tmp_path, GOOD + extra))
    assert f": {field}:" in str(e.value)


@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd", "a/../../x.j2", "x y.j2", "-x.j2"])
def test_provision_paths_stay_inside_the_image_directory(tmp_path, rel):
    with pytest.raises(UserError, match="provision"):
        load_image("demo", make(tmp_path, GOOD.replace("[p.sh.j2]", f"['{rel}']")))


def test_provision_symlink_out_of_the_image_directory(tmp_path):
    root = make(tmp_path, GOOD.replace("[p.sh.j2]", "[evil.j2]"))
    (root / "demo" / "evil.j2").symlink_to("/etc/hostname")
    with pytest.raises(UserError, match=r"provision\[0\].*outside the image directory"):
        load_image("demo", root)


def test_image_templates_are_sandboxed(tmp_path):
    root = make(tmp_path, GOOD, "{{ cycler.__init__.__globals__.os.system('touch " + str(tmp_path / "pwned") + "') }}\n")
    spec = load_image("demo", root)
    with pytest.raises(UserError, match="template failed"):
        render_scripts(spec)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match="template failed"):
        render_string("{{ ''.__class__.__mro__ }}")
    with pytest.raises(UserError, match="too large"):
        render_string("{{ 'x' * 10**12 }}")
    # ordinary image templates keep working, with the usual filters
    assert render_string("{{ spec.name | shquote }} {{ version }}", spec=spec, version="1") == "demo 1"


# --- property: what validation accepts cannot change the shape of the customize hook -----------

printable = st.characters(blacklist_categories=("Cs", "Cc"))
b64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=1, max_size=80)
keys = st.builds(lambda t, blob, pad, c: f"{t} {blob}{pad}{c}",
                 st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com"]),
                 b64, st.sampled_from(["", "=", "=="]),
                 st.one_of(st.just(""), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                                                max_size=40).map(lambda c: " " + c)))


def _spec_or_none(**kw) -> ImageSpec | None:
    try:
        return ImageSpec(name="demo", version="1.0.0", **kw)
    except ValidationError:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostname=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,20}[A-Za-z0-9]", fullmatch=True),
       password=st.text(alphabet=printable, min_size=1, max_size=40),
       user=st.from_regex(r"[a-z_][a-z0-9_-]{0,10}", fullmatch=True),
       ssh_keys=st.lists(keys, max_size=3))
def test_customize_hook_quotes_every_value(tmp_path_factory, hostname, password, user, ssh_keys):
    try:
        u = User(name=user, password=password, ssh_authorized_keys=tuple(ssh_keys))
    except ValidationError:
        return
    spec = _spec_or_none(hostname=hostname, users=(u,))
    if spec is None:
        return
    script = rootfs.customize_script(spec)
    assert subprocess.run(["sh", "-n"], check=False, input=script, text=True).returncode == 0
    # run it for real against a scratch root, with chroot stubbed: files must hold the values exactly
    tmp = tmp_path_factory.mktemp("root")
    root, bin_ = tmp / "root", tmp / "bin"
    for d in ("etc/systemd/network", f"home/{user}", "bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    bin_.mkdir()
    stub = bin_ / "chroot"
    stub.write_text('#!/bin/sh\ncase "$2" in chpasswd) cat >> "$1/chpasswd.in";; esac\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    r = subprocess.run(["sh", "-c", script, "hook", str(root)], check=False, env=env, capture_output=True, text=True, cwd=tmp)
    assert r.returncode == 0, r.stderr
    assert (root / "etc/hostname").read_text() == hostname + "\n"
    assert f"127.0.1.1\t{hostname}\n" in (root / "etc/hosts").read_text()
    assert (root / "chpasswd.in").read_text(encoding="utf-8") == f"{user}:{password}\n"
    auth = root / "home" / user / ".ssh" / "authorized_keys"
    if ssh_keys:
        assert auth.read_text() == "".join(k + "\n" for k in ssh_keys)
    else:
        assert not auth.exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["bin", "root"]  # nothing written beside the root

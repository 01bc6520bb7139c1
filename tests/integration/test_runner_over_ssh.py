"""The `--host SSH` paths on a real runner VM: one VM booted (TCG) from the image this project
built, then `builder runner install-virtualbox` and `builder runner register` run over SSH as
the cloud-init user with `sudo -n`. VirtualBox cannot run here, so the VBoxManage stand-in goes
onto the VM's PATH (where a non-interactive SSH session and sudo's secure_path both find it).
When the module is done the VM is destroyed and its domain, volumes, files, network and pool
are asserted gone."""

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.core import proc
from tests.fakes import extpack
from tests.fakes.gitlab_server import FakeGitLab
from tests.fakes.httpfiles import FileServer
from tests.integration.runner_fixtures import conn, runner_vm  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.root]

FAKE = Path(__file__).resolve().parent.parent / "fakes" / "vboxmanage"
STATE = "/var/lib/fake-vbox"
WRAPPER = f'#!/bin/sh\nFAKE_VBOX_STATE={STATE} exec python3 /usr/local/lib/fake-vbox/vboxmanage "$@"\n'
PACK = "Oracle_VM_VirtualBox_Extension_Pack-7.0.20.vbox-extpack"


@pytest.fixture(scope="module")
def vm(conn, minimal_qcow2, tmp_path_factory):
    with runner_vm(conn, minimal_qcow2, tmp_path_factory.mktemp("runner-vm")) as v:
        yield v


@pytest.fixture(scope="module")
def stand_in(vm):
    """The stand-in as /usr/local/bin/VBoxManage; its state directory is named in a wrapper
    because sudo drops the environment."""
    t = vm.target
    with t.staged(FAKE) as remote:
        t.run(["install", "-D", "-m", "0755", remote, "/usr/local/lib/fake-vbox/vboxmanage"], root=True)
    t.write("/usr/local/bin/VBoxManage", WRAPPER, mode="0755")
    return t


@pytest.fixture
def vbox(stand_in):
    """Fresh stand-in state: VirtualBox 7.0.20, no extension pack. Calls come from the login
    user and from root (sudo), so the directory and call log are writable by both."""
    stand_in.run(["sh", "-c", f"rm -rf {STATE} && mkdir -m 0777 {STATE} && echo 7.0.20r163906 > {STATE}/version"
                  f" && install -m 0666 /dev/null {STATE}/calls.log"], root=True)
    return stand_in


@pytest.fixture
def mirror(vm, tmp_path):
    """Oracle's download layout, served on the runner network's gateway (reachable from this
    host and from the guest) for this test only."""
    root = tmp_path / "mirror"
    with FileServer(root, host=vm.place["gateway"]) as srv:
        yield srv


def on_vm(t, script: str, **kw) -> str:
    return t.run(["sh", "-c", script], root=True, **kw).output


def vm_calls(t) -> list[list[str]]:
    return [json.loads(line) for line in on_vm(t, f"cat {STATE}/calls.log").splitlines()]


def vm_snapshot(t) -> str:
    """What an install would change on the VM: stand-in state (bar its call log), staged files,
    any extension pack anywhere on the root file system."""
    return on_vm(t, f"cd {STATE} && for f in $(ls | grep -v calls.log); do echo \"== $f\"; cat $f; done;"
                    " ls -d /tmp/builder.* 2>/dev/null; find / -xdev -name '*.vbox-extpack'; true")


def install(vm, mirror, cache, *extra):
    return main(["runner", "install-virtualbox", "--host", vm.login, "--ssh-config", str(vm.ssh_config),
                 "--extpack-url", mirror.url, "--cache", str(cache), *extra])


def test_runner_answers_ssh(vm):
    t = vm.target
    assert t.run(["hostname"]).output.strip() == vm.spec.name
    assert json.loads(t.read("/etc/builder/runner.json")) == {"name": vm.spec.name, "tags": ["test"]}


def test_install_virtualbox_over_ssh_then_nothing_to_do(vm, vbox, mirror, tmp_path, capsys):
    extpack.publish(mirror.root, "7.0.20", 163906)
    assert install(vm, mirror, tmp_path / "cache", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "virtualbox": "7.0.20", "revision": 163906, "extpack": extpack.NAME_70, "changed": ["extpack", "vrdeextpack"]}

    listing = vbox.run(["VBoxManage", "list", "extpacks"]).output  # as the login user, its PATH
    assert f"Pack no. 0:   {extpack.NAME_70}" in listing
    assert "Version:        7.0.20" in listing and "Usable:         true" in listing
    # installed through sudo -n from a private staging directory that is gone again
    assert on_vm(vbox, f"stat -c %U {STATE}/extpacks.json {STATE}/vrde").split() == ["root", "root"]
    [inst] = [c for c in vm_calls(vbox) if c[:2] == ["extpack", "install"]]
    assert inst[4].startswith("/tmp/builder.") and inst[4].endswith(f"/{PACK}")
    assert on_vm(vbox, "ls -d /tmp/builder.* 2>/dev/null; true").strip() == ""

    before, calls = len(mirror.requests), len(vm_calls(vbox))
    assert install(vm, mirror, tmp_path / "cache", "--json") == 0
    assert json.loads(capsys.readouterr().out)["changed"] == []
    assert len(mirror.requests) == before  # nothing downloaded ...
    assert [c for c in vm_calls(vbox)[calls:] if c[0] in ("extpack", "setproperty")] == []  # ... or changed


def test_wrong_checksum_over_ssh_refuses_and_leaves_vm_unchanged(vm, vbox, mirror, tmp_path, capsys):
    extpack.publish(mirror.root, "7.0.20", 163906, sums=f"{'0' * 64} *{PACK}\n")
    before = vm_snapshot(vbox)
    assert install(vm, mirror, tmp_path / "cache") == 1
    assert "does not match" in capsys.readouterr().err
    assert vm_snapshot(vbox) == before
    assert not any(c[0] in ("extpack", "setproperty") for c in vm_calls(vbox))
    assert not list((tmp_path / "cache").rglob("*.vbox-extpack"))


def test_register_over_ssh_writes_config_0600_and_never_shows_token(vm, tmp_path, monkeypatch, capfd, caplog):
    (tmp_path / "gitlab").mkdir()
    gitlab = FakeGitLab(tmp_path / "gitlab").start()  # the host process registers; 127.0.0.1 will do
    private = gitlab.add_private_token("glpat-RUNNER-test-0123456789")
    argvs = []

    def recording_run(argv, **kw):
        argvs.append([str(a) for a in argv])
        return real_run(argv, **kw)

    real_run = proc.run
    monkeypatch.setattr(proc, "run", recording_run)
    monkeypatch.setenv("GITLAB_TOKEN", private)
    try:
        rc = main(["runner", "register", "--host", vm.login, "--ssh-config", str(vm.ssh_config),
                   "--url", gitlab.url, "--runner-type", "group_type", "--group-id", "42",
                   "--tag", "virtualbox", "--json"])
    finally:
        gitlab.stop()
    monkeypatch.undo()
    assert rc == 0
    [runner] = gitlab.runners
    token = runner["token"]
    assert token.startswith("glrt-") and runner["group_id"] == 42

    out = capfd.readouterr()
    shown = out.out + out.err + caplog.text + json.dumps(argvs)
    assert token not in shown and private not in shown
    assert json.loads(out.out)["config"] == "/etc/gitlab-runner/config.toml"
    assert any(a[0] == "ssh" for a in argvs)  # it did go over SSH

    t = vm.target
    assert on_vm(t, "stat -c '%a %U' /etc/gitlab-runner/config.toml").strip() == "600 root"
    config = on_vm(t, "cat /etc/gitlab-runner/config.toml")
    assert f'token = "{token}"' in config and f'name = "{vm.spec.name}"' in config
    assert f'url = "{gitlab.url}"' in config
    # on the VM the token is in config.toml only (logs and journals included); the pattern
    # travels over stdin so this check puts it in no argv either
    found = on_vm(t, "grep -rlF -f /dev/stdin /etc /tmp /var/tmp /home /root /var/log /run/log 2>/dev/null; true",
                  stdin_data=token.encode())
    assert found.split() == ["/etc/gitlab-runner/config.toml"]

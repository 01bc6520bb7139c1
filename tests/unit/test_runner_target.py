"""Target: the argv a command becomes locally and over SSH, and staging of controller files."""

from pathlib import Path

from builder.runner import target as tg
from builder.runner.target import Target


def test_local_argv_is_unchanged():
    assert Target().argv(["VBoxManage", "--version"], root=True) == ["VBoxManage", "--version"]


def test_ssh_argv_quotes_one_remote_command_with_sudo_n_for_root():
    argv = Target(ssh="builder@192.0.2.10").argv(["VBoxManage", "setproperty", "vrdeextpack",
                                                  "Oracle VM VirtualBox Extension Pack"], root=True)
    assert argv[0] == "ssh" and argv[-2] == "builder@192.0.2.10"
    assert argv[-1] == "sudo -n VBoxManage setproperty vrdeextpack 'Oracle VM VirtualBox Extension Pack'"
    assert "LogLevel=ERROR" in argv and "BatchMode=yes" in argv


def test_ssh_config_comes_first_so_our_options_still_apply():
    argv = Target(ssh="u@h", ssh_config=Path("/etc/builder/ssh_config")).argv(["true"])
    assert argv[1:3] == ["-F", "/etc/builder/ssh_config"]


def test_staged_copies_into_a_private_dir_and_removes_it(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        out = "/tmp/builder.AbCd1234\n" if "mktemp" in argv[-1] else ""
        return tg.proc.Result(argv, 0, out, 0.0)

    monkeypatch.setattr(tg.proc, "run", fake_run)
    local = tmp_path / "pack.vbox-extpack"
    with Target(ssh="u@h").staged(local) as remote:
        assert remote == "/tmp/builder.AbCd1234/pack.vbox-extpack"
    assert calls[0][-1] == "mktemp -d /tmp/builder.XXXXXXXX"
    assert calls[1][0] == "scp" and calls[1][-2:] == [str(local), f"u@h:{remote}"]
    assert calls[2][-1] == "rm -rf /tmp/builder.AbCd1234"


def test_staged_is_the_file_itself_locally(tmp_path):
    with Target().staged(tmp_path / "x") as p:
        assert p == str(tmp_path / "x")

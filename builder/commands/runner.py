"""`builder runner ...`: GitLab runner VMs (libvirt), VirtualBox + extension pack, registration."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from .. import host
from ..console import emit_json, err
from ..core.errors import UserError
from ..core.runs import Run
from .options import current_project

DEFAULT_URI = os.environ.get("BUILDER_LIBVIRT_URI", "qemu:///system")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "builder" / "extpacks"

uri_option = click.option("--uri", default=DEFAULT_URI, show_default=True,
                          help="libvirt connection URI (env BUILDER_LIBVIRT_URI)")
json_option = click.option("--json", "as_json", is_flag=True, help="print the result as JSON on stdout")


def _target_options(f):
    f = click.option("--ssh-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     envvar="BUILDER_SSH_CONFIG", help="ssh_config for --host: identity, known hosts, "
                     "jump host (env BUILDER_SSH_CONFIG) [~/.ssh/config]")(f)
    f = click.option("--local", "local", is_flag=True, help="run on this machine")(f)
    return click.option("--host", "host", metavar="SSH", help="runner VM as user@host (uses sudo -n)")(f)


# user@host for ssh's argv: a user name, then a host name, IPv4 or IPv6 address; never a leading
# `-` (ssh would read `-oProxyCommand=...` as an option and run it)
SSH_DEST = re.compile(r"^([a-z_][a-z0-9_.-]{0,31}@)?"
                      r"([A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45})\Z")


def _target(host: str | None, local: bool, ssh_config: Path | None):
    from ..runner.target import Target
    from ..runner.virtualbox import check_target

    if bool(host) == local:
        raise UserError("give exactly one of --host SSH or --local", field="--host")
    if host and not SSH_DEST.match(host):
        raise UserError(f"{host!r} is not user@host (a host name or an IP address)", field="--host")
    return Target(ssh=check_target(host) if host else None, ssh_config=ssh_config)


def _report(data: dict, as_json: bool, line: str) -> None:
    if as_json:
        emit_json(data)
    else:
        err.print(line)


@click.group(name="runner", epilog="""\b
Examples:
  builder runner provision ci/runners/runner-01.yaml
  builder runner list --json
  builder runner install-virtualbox --host builder@192.0.2.10
  GITLAB_TOKEN=... builder runner register --local --url https://gitlab.example.com \\
      --runner-type group_type --group-id 42
  builder runner destroy runner-01""")
def group() -> None:
    """GitLab runner VMs: provision with libvirt, VirtualBox + extension pack, registration."""


@group.command(epilog="""\b
Examples:
  builder runner provision ci/runners/runner-01.yaml
  builder runner provision ci/runners/runner-01.yaml --wait --json""")
@click.argument("spec", type=click.Path(path_type=Path))
@uri_option
@click.option("--wait/--no-wait", default=False, help="wait for an address and for SSH")
@click.option("--timeout", default=600, show_default=True, help="seconds to wait for address and SSH")
@json_option
def provision(spec: Path, uri: str, wait: bool, timeout: int, as_json: bool) -> None:
    """Create (or find) the runner VM described by SPEC and start it. Idempotent."""
    from ..runner import domain, probes
    from ..runner.spec import load_runner

    s = load_runner(spec, current_project().artifacts_dir)
    flag = domain.virt_flag_for(s.accel, probes.probe_host()["cpu_virt_flag"], _kvm_usable)
    with Run() as run, domain.connection(uri) as conn:
        result = domain.provision(conn, s, run, flag)
        result["accel"] = "kvm" if flag else "tcg"
        if wait:
            result["address"] = domain.wait_address(conn, s.name, timeout)
            domain.wait_ssh(result["address"], timeout)
    state = "created" if result["created"] else "already there"
    _report(result, as_json, f"runner {s.name}: {state} ({result['accel']})")


def _kvm_usable() -> bool:
    return host.kvm_probe().usable


@group.command(name="list", epilog="""\b
Examples:
  builder runner list
  builder runner list --json""")
@uri_option
@json_option
def list_(uri: str, as_json: bool) -> None:
    """Runner VMs builder made on this libvirt host."""
    from ..runner import domain

    with domain.connection(uri) as conn:
        runners = domain.list_runners(conn)
    if as_json:
        emit_json(runners)
        return
    for r in runners:
        click.echo(f"{r['name']}\t{'running' if r['active'] else 'stopped'}\t{','.join(r['tags'])}")


@group.command(epilog="""\b
Examples:
  builder runner destroy runner-01""")
@click.argument("name")
@uri_option
@json_option
def destroy(name: str, uri: str, as_json: bool) -> None:
    """Remove runner NAME: domain, overlay, seed ISO and console log."""
    from ..runner import domain

    with domain.connection(uri) as conn:
        result = domain.destroy(conn, name)
    _report(result, as_json, f"runner {name}: {'removed' if result['removed'] else 'not there'}")


@group.command(name="install-virtualbox", epilog="""\b
Examples:
  builder runner install-virtualbox --host builder@192.0.2.10
  builder runner install-virtualbox --host builder@192.0.2.10 --ssh-config ci/runners/ssh_config
  builder runner install-virtualbox --local --series 7.1
  builder runner install-virtualbox --local --extpack-url http://mirror.example/virtualbox --json""")
@_target_options
@click.option("--series", default="7.0", show_default=True, help="virtualbox-X.Y package to install")
@click.option("--user", default="builder", show_default=True, help="user added to vboxusers")
@click.option("--extpack-url", default=None, metavar="BASE",
              help="files at BASE/<ver>/<file> and BASE/<ver>/SHA256SUMS [Oracle's download server]")
@click.option("--cache", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True)
@json_option
def install_virtualbox(host, local, ssh_config, series, user, extpack_url, cache, as_json) -> None:
    """VirtualBox (unless VBoxManage is already there) and the extension pack for exactly its version."""
    from ..runner import virtualbox as vb

    result = vb.install_virtualbox(_target(host, local, ssh_config), series=series, user=user,
                                   base_url=extpack_url or vb.DEFAULT_EXTPACK_URL, cache=cache)
    what = ", ".join(result["changed"]) or "nothing to do"
    _report(result, as_json, f"VirtualBox {result['virtualbox']} with {result['extpack']}: {what}")


@group.command(epilog="""\b
Examples:
  GITLAB_TOKEN=glpat-... builder runner register --host builder@192.0.2.10 \\
      --url https://gitlab.example.com --runner-type group_type --group-id 42 --tag virtualbox
  GITLAB_TOKEN=glpat-... builder runner register --local --url https://gitlab.example.com \\
      --runner-type instance_type --run-untagged --json""")
@_target_options
@click.option("--url", required=True, help="GitLab base URL")
@click.option("--runner-type", required=True, type=click.Choice(["instance_type", "group_type", "project_type"]))
@click.option("--group-id", type=int)
@click.option("--project-id", type=int)
@click.option("--tag", "tags", multiple=True, help="runner tag (repeat)")
@click.option("--run-untagged", is_flag=True)
@click.option("--description", default="")
@click.option("--name", default=None, help="runner name in config.toml [the target's host name]")
@click.option("--config", default="/etc/gitlab-runner/config.toml", show_default=True)
@click.option("--token-env", default="GITLAB_TOKEN", show_default=True,
              help="environment variable holding the access token (never an argument)")
@json_option
def register(host, local, ssh_config, url, runner_type, group_id, project_id, tags, run_untagged, description, name,
             config, token_env, as_json) -> None:
    """Create a runner in GitLab (POST /user/runners) and write its config.toml (mode 0600)."""
    from ..publish.gitlab_target import check_url
    from ..runner import register as reg

    check_url(url, "--url")
    private_token = os.environ.get(token_env)
    if not private_token:
        raise UserError(f"set {token_env} to a GitLab access token with the create_runner scope", field="--token-env")
    target = _target(host, local, ssh_config)
    r = reg.Registration(url=url, runner_type=runner_type, group_id=group_id, project_id=project_id,
                         description=description, tags=tags, run_untagged=run_untagged)
    name = name or target.run(["hostname"]).output.strip()
    result = reg.register(r, private_token, target, name=name, config=config)
    _report(result, as_json, f"runner {result['id']} registered; {config} written")


COMMANDS = [group]

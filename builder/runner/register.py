"""Register a runner with GitLab (POST /user/runners, the authentication-token workflow) and
write its config.toml on the runner. The `glrt-` token is a secret: it travels over stdin to
config.toml (mode 0600) and is never printed, logged, passed in argv or returned.

Creating a runner is not idempotent, so the POST is never retried (a lost answer would leave a
second runner behind), and it waits at most CONNECT_TIMEOUT to connect and READ_TIMEOUT for
the answer: an unreachable URL fails in seconds, in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import templates
from ..core.errors import BuildFailed, UserError
from .target import Target

RunnerType = Literal["instance_type", "group_type", "project_type"]
CONFIG = "/etc/gitlab-runner/config.toml"
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0


@dataclass(frozen=True)
class Registration:
    url: str
    runner_type: str
    group_id: int | None = None
    project_id: int | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    run_untagged: bool = False


def create_payload(r: Registration) -> dict:
    """The attributes GitLab documents for POST /user/runners; the scope id must match the type."""
    need = {"group_type": "group_id", "project_type": "project_id"}.get(r.runner_type)
    if need == "group_id" and r.group_id is None:
        raise UserError("group_type needs --group-id", field="--group-id")
    if need == "project_id" and r.project_id is None:
        raise UserError("project_type needs --project-id", field="--project-id")
    data: dict = {"runner_type": r.runner_type, "run_untagged": r.run_untagged}
    if need:
        data[need] = r.group_id if need == "group_id" else r.project_id
    if r.description:
        data["description"] = r.description
    if r.tags:
        data["tag_list"] = list(r.tags)
    return data


def config_toml(*, url: str, name: str, runner_id: int, token: str, executor: str = "shell") -> str:
    return templates.render("runner/config.toml.j2", url=url.rstrip("/"), runner_name=name, runner_id=runner_id,
                            token=token, executor=executor, concurrent=1)


def create_runner(r: Registration, private_token: str) -> tuple[int, str]:
    import gitlab
    import requests
    from gitlab.v4.objects import CurrentUserRunnerManager

    from ..publish.gitlab_target import mask_userinfo

    where = mask_userinfo(r.url)
    # python-gitlab hands timeout to requests, which takes (connect, read); its annotation says float
    gl = gitlab.Gitlab(r.url, private_token=private_token, retry_transient_errors=False,
                       timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))  # type: ignore[arg-type]
    try:
        # gl.user.runners without the GET /user round trip gl.auth() would make first
        created = CurrentUserRunnerManager(gl).create(create_payload(r))
    except requests.RequestException as e:
        raise BuildFailed(f"{where}: cannot reach GitLab ({type(e).__name__})") from None
    except gitlab.GitlabAuthenticationError:
        raise BuildFailed(f"{where} rejected the access token (401): check GITLAB_TOKEN") from None
    except gitlab.GitlabCreateError as e:
        if e.response_code == 403:
            raise BuildFailed(f"{where}: the token may not create {r.runner_type} runners (403 Forbidden); "
                              "it needs the create_runner scope and the right role") from None
        if e.response_code == 400:
            raise UserError(f"GitLab refused the runner: {e.error_message}", field="--runner-type") from None
        raise BuildFailed(f"{where}: creating the runner failed ({e.response_code}): {e.error_message}") from None
    except gitlab.GitlabError as e:
        raise BuildFailed(f"{where}: {mask_userinfo(str(e))}") from None
    token = created.attributes.get("token", "")
    if not token.startswith("glrt-"):
        raise BuildFailed(f"{where} answered without a glrt- authentication token")
    return created.attributes["id"], token


def register(r: Registration, private_token: str, target: Target, *, name: str, config: str = CONFIG) -> dict:
    runner_id, token = create_runner(r, private_token)
    target.write(config, config_toml(url=r.url, name=name, runner_id=runner_id, token=token), mode="0600")
    return {"id": runner_id, "config": config, "url": r.url, "runner_type": r.runner_type,
            "tags": list(r.tags)}

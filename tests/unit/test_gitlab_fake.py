"""The fake GitLab itself: shapes and status codes the other tests (and the runner helper) rely on."""

from __future__ import annotations

import gitlab
import pytest
import requests

from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)


def client(server, token=None, kind="private_token") -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, **{kind: token or server.token})


def test_user_runner_creation(gitlab_server):
    gl = client(gitlab_server)
    gl.auth()
    r = gl.user.runners.create({"runner_type": "project_type", "project_id": gitlab_server.project.id,
                                "description": "kvm-1", "tag_list": ["builder", "kvm"]})
    assert r.token.startswith("glrt-") and isinstance(r.id, int) and r.token_expires_at is None
    assert gitlab_server.runners[-1]["tag_list"] == ["builder", "kvm"]
    with pytest.raises(gitlab.GitlabCreateError) as e:
        gl.user.runners.create({"runner_type": "nonsense"})
    assert e.value.response_code == 400


def test_runner_creation_auth(gitlab_server):
    url = f"{gitlab_server.url}/api/v4/user/runners"
    assert requests.post(url, json={"runner_type": "instance_type"}).status_code == 401
    assert requests.post(url, json={"runner_type": "instance_type"}, headers={"PRIVATE-TOKEN": "nope"}).status_code == 401
    assert requests.post(url, json={"runner_type": "instance_type"},
                         headers={"JOB-TOKEN": gitlab_server.job_token}).status_code == 403
    readonly = gitlab_server.add_private_token("glpat-readonly", scopes=("read_api",))
    r = requests.post(url, json={"runner_type": "instance_type"}, headers={"PRIVATE-TOKEN": readonly})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    runner_only = gitlab_server.add_private_token("glpat-runner", scopes=("create_runner",))
    r = requests.post(url, json={"runner_type": "instance_type"}, headers={"PRIVATE-TOKEN": runner_only})
    assert r.status_code == 201 and set(r.json()) == {"id", "token", "token_expires_at"}


def test_generic_package_roundtrip_and_pagination_headers(gitlab_server):
    gl = client(gitlab_server)
    project = gl.projects.get("training/images")
    for i in range(25):
        project.generic_packages.upload("pkg", "1.0", f"f{i:02}.bin", data=f"data{i}".encode())
    assert project.generic_packages.download("pkg", "1.0", "f07.bin") == b"data7"
    pkg = project.packages.list(package_name="pkg", get_all=True)[0]
    r = requests.get(f"{gitlab_server.url}/api/v4/projects/{project.id}/packages/{pkg.id}/package_files",
                     headers={"PRIVATE-TOKEN": gitlab_server.token})
    assert r.headers["X-Total"] == "25" and r.headers["X-Next-Page"] == "2" and 'rel="next"' in r.headers["Link"]
    assert len(pkg.package_files.list(get_all=True)) == 25
    with pytest.raises(gitlab.GitlabGetError) as e:
        project.generic_packages.download("pkg", "1.0", "missing.bin")
    assert e.value.response_code == 404


def test_job_token_scope(gitlab_server):
    gl = client(gitlab_server, gitlab_server.job_token, "job_token")
    project = gl.projects.get("training/images", lazy=True)
    project.generic_packages.upload("pkg", "1.0", "a.bin", data=b"x")
    with pytest.raises(gitlab.GitlabListError) as e:
        project.pipelineschedules.list(get_all=True)
    assert e.value.response_code == 403


def test_release_409_and_link_400(gitlab_server):
    project = client(gitlab_server).projects.get("training/images", lazy=True)
    project.releases.create({"tag_name": "v1", "ref": "main", "description": "d"})
    with pytest.raises(gitlab.GitlabCreateError) as e:
        project.releases.create({"tag_name": "v1", "ref": "main"})
    assert e.value.response_code == 409
    with pytest.raises(gitlab.GitlabCreateError) as e:
        project.releases.create({"tag_name": "v2"})
    assert e.value.response_code == 422
    rel = project.releases.get("v1")
    rel.links.create({"name": "a", "url": "http://x/a"})
    with pytest.raises(gitlab.GitlabCreateError) as e:
        rel.links.create({"name": "a", "url": "http://x/b"})
    assert e.value.response_code == 400

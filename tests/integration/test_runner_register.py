"""`builder runner register` through the real python-gitlab client against a minimal local
GitLab speaking POST /api/v4/user/runners as documented: 201 with id + glrt- token; 400 for a
bad runner_type or missing scope id; 401 for a bad token; 403 without permission."""

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gitlab
import pytest

from builder.cli import main
from builder.runner import register as reg
from builder.runner.target import Target

GOOD, READONLY = "glpat-good", "glpat-readonly"
RUNNER_TOKEN = "glrt-t1_S3cretRunnerTokenXyz"


class _GitLab(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/api/v4/user/runners":
            return self._send(404, {"message": "404 Not Found"})
        token = self.headers.get("PRIVATE-TOKEN")
        if token not in (GOOD, READONLY):
            return self._send(401, {"message": "401 Unauthorized"})
        if token == READONLY:
            return self._send(403, {"message": "403 Forbidden"})
        data = json.loads(body or b"{}")
        self.server.created.append(data)
        kind = data.get("runner_type")
        if kind not in ("instance_type", "group_type", "project_type"):
            return self._send(400, {"error": "runner_type does not have a valid value"})
        if kind == "group_type" and "group_id" not in data:
            return self._send(400, {"message": "400 Bad request - group_id is missing"})
        self._send(201, {"id": 9001, "token": RUNNER_TOKEN, "token_expires_at": None})

    def log_message(self, *args):
        pass


@pytest.fixture
def gitlab_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _GitLab)
    srv.created = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv.created
    srv.shutdown()
    srv.server_close()


def test_register_writes_config_0600_and_never_shows_token(gitlab_url, tmp_path, monkeypatch, capfd):
    url, created = gitlab_url
    cfg = tmp_path / "etc" / "gitlab-runner" / "config.toml"
    monkeypatch.setenv("GITLAB_TOKEN", GOOD)
    rc = main(["runner", "register", "--local", "--url", url, "--runner-type", "group_type", "--group-id", "42",
               "--tag", "virtualbox", "--tag", "kvm", "--name", "runner-01", "--config", str(cfg), "--json"])
    assert rc == 0
    out = capfd.readouterr()
    assert RUNNER_TOKEN not in out.out + out.err and GOOD not in out.out + out.err
    assert json.loads(out.out) == {"id": 9001, "config": str(cfg), "url": url, "runner_type": "group_type",
                                   "tags": ["virtualbox", "kvm"]}
    assert created == [{"runner_type": "group_type", "group_id": 42, "run_untagged": False,
                        "tag_list": ["virtualbox", "kvm"]}]
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    text = cfg.read_text()
    assert f'token = "{RUNNER_TOKEN}"' in text and "id = 9001" in text and f'url = "{url}"' in text
    # the token is nowhere else under the test's directory
    assert [p for p in tmp_path.rglob("*") if p.is_file() and RUNNER_TOKEN in p.read_text(errors="replace")] == [cfg]


def test_bad_token_401(gitlab_url, tmp_path, monkeypatch, capsys):
    url, _ = gitlab_url
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-wrong")
    rc = main(["runner", "register", "--local", "--url", url, "--runner-type", "instance_type",
               "--config", str(tmp_path / "c.toml"), "--name", "r"])
    assert rc == 1 and "401" in capsys.readouterr().err
    assert not (tmp_path / "c.toml").exists()


def test_forbidden_403(gitlab_url, tmp_path):
    url, _ = gitlab_url
    with pytest.raises(Exception, match="403 Forbidden"):
        reg.register(reg.Registration(url=url, runner_type="instance_type"), READONLY, Target(),
                     name="r", config=str(tmp_path / "c.toml"))


def test_server_rejects_bad_runner_type_400(gitlab_url):
    """The documented 400, seen through python-gitlab itself (our CLI validates earlier)."""
    url, _ = gitlab_url
    gl = gitlab.Gitlab(url, private_token=GOOD)
    with pytest.raises(gitlab.GitlabCreateError) as e:
        gitlab.v4.objects.CurrentUserRunnerManager(gl).create({"runner_type": "bogus_type"})
    assert e.value.response_code == 400


def test_missing_group_id_is_bad_input(gitlab_url, monkeypatch, tmp_path, capsys):
    url, created = gitlab_url
    monkeypatch.setenv("GITLAB_TOKEN", GOOD)
    rc = main(["runner", "register", "--local", "--url", url, "--runner-type", "group_type",
               "--config", str(tmp_path / "c.toml"), "--name", "r"])
    assert rc == 2 and "--group-id" in capsys.readouterr().err and created == []


def test_no_token_in_environment(monkeypatch, capsys):
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)
    rc = main(["runner", "register", "--local", "--url", "http://127.0.0.1:9", "--runner-type", "instance_type"])
    assert rc == 2 and "GITLAB_TOKEN" in capsys.readouterr().err

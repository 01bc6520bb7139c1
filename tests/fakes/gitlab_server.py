"""A fake GitLab: a real threaded HTTP server on 127.0.0.1 speaking the REST API v4 shapes and
status codes of the endpoints builder uses, so python-gitlab talks to it unmodified.

Endpoints: generic packages (PUT/GET), package listing and package files (offset pagination with
X-Next-Page/X-Total/Link), releases (409 on an existing tag) and their asset links, pipeline
schedules and their variables (an owner each: only the owner may edit a schedule or its
variables, 403 otherwise, until `POST .../take_ownership`), `POST /user/runners`. Auth by PRIVATE-TOKEN or JOB-TOKEN headers.
Uploads are streamed to disk and hashed on the way, never held in memory.

Fault injection (`server.inject(...)`): an HTTP status with optional Retry-After, a burst of them,
or a connection dropped halfway through reading an upload, or after storing it (a lost response).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

RUNNER_TYPES = ("instance_type", "group_type", "project_type")
CHUNK = 1 << 20


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HTTPError(Exception):
    def __init__(self, status: int, message, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Fault:
    method: str
    path: re.Pattern
    kind: str  # status | drop_mid_upload | drop_after_store
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    body: dict | None = None


@dataclass
class Project:
    id: int
    path_with_namespace: str
    default_branch: str = "main"
    duplicates_allowed: bool = True
    packages: list[dict] = field(default_factory=list)
    files: dict[int, list[dict]] = field(default_factory=dict)  # package id -> package files
    releases: dict[str, dict] = field(default_factory=dict)  # tag -> release
    tags: set[str] = field(default_factory=set)
    schedules: dict[int, dict] = field(default_factory=dict)


class FakeGitLab:
    def __init__(self, storage: Path):
        self.storage = storage
        self.lock = threading.RLock()
        self.private_tokens: dict[str, dict] = {}  # token -> {"scopes": [...], "username": ...}
        self.job_tokens: dict[str, int] = {}  # token -> project id
        self.projects: dict[int, Project] = {}
        self.runners: list[dict] = []
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) as received, for assertions
        self._ids = iter(range(1, 1 << 30))
        self.httpd: ThreadingHTTPServer | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def add_project(self, path: str, **kw) -> Project:
        p = Project(next(self._ids), path, **kw)
        self.projects[p.id] = p
        return p

    def add_private_token(self, token: str, scopes=("api",), username: str = "root") -> str:
        self.private_tokens[token] = {"scopes": list(scopes), "username": username}
        return token

    def add_job_token(self, token: str, project: Project) -> str:
        self.job_tokens[token] = project.id
        return token

    def add_schedule(self, project: Project, description: str, owner: str = "root", **kw) -> dict:
        """A schedule as if `owner` had created it (another user, for the ownership rules)."""
        sch = {"id": self.next_id(), "description": description, "ref": "main", "cron": "0 3 * * 1",
               "cron_timezone": "UTC", "next_run_at": _now(), "active": True, "created_at": _now(),
               "updated_at": _now(), "owner": _user(owner), "variables": [], **kw}
        project.schedules[sch["id"]] = sch
        return sch

    def inject(self, method: str, path_regex: str, kind: str = "status", **kw) -> Fault:
        f = Fault(method.upper(), re.compile(path_regex), kind, **kw)
        with self.lock:
            self.faults.append(f)
        return f

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGitLab:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="fake-gitlab", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    # -- helpers for tests ----------------------------------------------------------------------
    def package_files(self, project: Project, name: str, version: str) -> list[dict]:
        out = []
        for pkg in project.packages:
            if pkg["name"] == name and pkg["version"] == version:
                out += project.files[pkg["id"]]
        return out

    def blob(self, pf: dict) -> Path:
        return self.storage / str(pf["id"])

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.method == method and f.path.search(path):
                    f.times -= 1
                    return f
        return None

    def next_id(self) -> int:
        return next(self._ids)


def _user(username: str) -> dict:
    uid = int(hashlib.sha256(username.encode()).hexdigest()[:6], 16)
    return {"id": uid, "username": username, "name": username, "state": "active",
            "avatar_url": None, "web_url": f"http://gitlab.invalid/{username}"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeGitLab

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing -------------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch("GET")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        s = self.server_state
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        raw = split.path
        s.requests.append((method, raw))
        self._body_read = False
        fault = s.take_fault(method, raw)
        try:
            if fault and fault.kind == "status":
                self._drain()
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                raise HTTPError(fault.status, fault.body or {"message": f"{fault.status} fault"}, headers)
            self.fault = fault
            if not raw.startswith("/api/v4/"):
                raise HTTPError(404, {"error": "404 Not Found"})
            parts = raw[len("/api/v4/") :].split("/")
            self.auth = self._authenticate()
            status, body, headers = self._route(method, parts)
            self._send(status, body, headers)
        except HTTPError as e:
            self._drain()
            self._send(e.status, e.message if isinstance(e.message, dict) else {"message": e.message}, e.headers)
        except _Dropped:
            self.close_connection = True
        except _Sent:
            pass

    def _drain(self) -> None:
        if not self._body_read:
            self._body_read = True
            for _ in self._body_chunks():
                pass

    def _body_chunks(self):
        self._body_read = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                raise _Dropped()
            left -= len(chunk)
            yield chunk

    def _json_body(self) -> dict:
        data = b"".join(self._body_chunks())
        if not data:
            return {}
        if "json" in self.headers.get("Content-Type", ""):
            return json.loads(data)
        return {k: v[-1] for k, v in parse_qs(data.decode()).items()}

    def _update(self, obj: dict, keys: tuple[str, ...]) -> dict:
        """A PUT: copy the given attributes of the JSON body onto obj; returns the body."""
        body = self._json_body()
        obj.update({k: body[k] for k in keys if k in body})
        return body

    def _send(self, status: int, body, headers: dict | None = None, raw: Path | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw is not None:
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(raw.stat().st_size))
            self.end_headers()
            with open(raw, "rb") as f:
                shutil.copyfileobj(f, self.wfile, CHUNK)
            return
        data = json.dumps(body).encode() if body is not None else b""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authenticate(self) -> tuple[str, object] | None:
        s = self.server_state
        if tok := self.headers.get("PRIVATE-TOKEN"):
            if tok not in s.private_tokens:
                raise HTTPError(401, "401 Unauthorized")
            return ("private", s.private_tokens[tok])
        if tok := self.headers.get("JOB-TOKEN"):
            if tok not in s.job_tokens:
                raise HTTPError(401, "401 Unauthorized")
            return ("job", s.job_tokens[tok])
        return None

    def _require(self, project: Project | None, *, job_ok: bool) -> None:
        if self.auth is None:
            raise HTTPError(401, "401 Unauthorized")
        kind, info = self.auth
        if kind == "job":
            if not job_ok or project is None or info != project.id:
                raise HTTPError(403, "403 Forbidden")
        elif "api" not in info["scopes"] and not (project is None and "create_runner" in info["scopes"]):
            raise HTTPError(403, {"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"})

    def _project(self, ref: str) -> Project:
        ref = unquote(ref)
        s = self.server_state
        for p in s.projects.values():
            if ref == str(p.id) or ref == p.path_with_namespace:
                return p
        raise HTTPError(404, "404 Project Not Found")

    def _paginate(self, items: list, parts: list[str]) -> tuple[int, list, dict]:
        per_page = max(1, min(100, int(self.query.get("per_page", 20))))
        page = max(1, int(self.query.get("page", 1)))
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        host = self.headers.get("Host")
        base = f"http://{host}/api/v4/{'/'.join(parts)}"

        def link(p: int) -> str:
            q = {**self.query, "page": str(p), "per_page": str(per_page)}
            return base + "?" + "&".join(f"{k}={quote(v)}" for k, v in sorted(q.items()))

        links = []
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(total), "X-Total-Pages": str(pages)}
        headers["X-Next-Page"] = str(page + 1) if page < pages else ""
        headers["X-Prev-Page"] = str(page - 1) if page > 1 else ""
        if page < pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        headers["Link"] = ", ".join(links)
        return 200, chunk, headers

    # -- routes ---------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]):
        s = self.server_state
        with s.lock:
            if parts == ["user", "runners"] and method == "POST":
                return self._create_runner()
            if parts == ["user"] and method == "GET":
                if self.auth is None or self.auth[0] != "private":
                    raise HTTPError(401, "401 Unauthorized")
                name = self.auth[1]["username"]
                return 200, {**_user(name), "web_url": f"{s.url}/{name}", "is_admin": True}, {}
            if len(parts) >= 2 and parts[0] == "projects":
                project = self._project(parts[1])
                rest = parts[2:]
                if rest[:2] == ["packages", "generic"] and len(rest) == 5:
                    return self._generic(method, project, *[unquote(x) for x in rest[2:]])
                if rest[:1] == ["packages"]:
                    self._require(project, job_ok=True)
                    return self._packages(method, project, rest[1:], parts)
                if rest[:1] == ["releases"]:
                    self._require(project, job_ok=True)
                    return self._releases(method, project, rest[1:], parts)
                if rest[:1] == ["pipeline_schedules"]:
                    self._require(project, job_ok=False)
                    return self._schedules(method, project, rest[1:], parts)
                if not rest and method == "GET":
                    self._require(project, job_ok=False)
                    return 200, self._project_json(project), {}
        raise HTTPError(404, "404 Not Found")

    def _project_json(self, p: Project) -> dict:
        return {"id": p.id, "path_with_namespace": p.path_with_namespace, "default_branch": p.default_branch,
                "web_url": f"{self.server_state.url}/{p.path_with_namespace}"}

    # generic packages
    def _generic(self, method: str, project: Project, name: str, version: str, file_name: str):
        self._require(project, job_ok=True)
        s = self.server_state
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or not re.fullmatch(r"[A-Za-z0-9._-]+", file_name):
            raise HTTPError(400, "400 Bad request - file_name is invalid")
        if not re.fullmatch(r"(\.?[\w+-]+\.?)+", version, re.ASCII):
            raise HTTPError(400, "400 Bad request - package_version is invalid")
        if method == "GET":
            files = [f for f in s.package_files(project, name, version) if f["file_name"] == file_name]
            if not files:
                raise HTTPError(404, "404 Package Not Found")
            return self._send_blob(files[-1])
        if method != "PUT":
            raise HTTPError(405, "405 Method Not Allowed")
        existing = [f for f in s.package_files(project, name, version) if f["file_name"] == file_name]
        if existing and not project.duplicates_allowed:
            raise HTTPError(400, "400 Bad request - Duplicate package is not allowed")
        pf_id = s.next_id()
        blob = s.storage / str(pf_id)
        h, md5, size = hashlib.sha256(), hashlib.md5(), 0
        s.lock.release()  # stream the body without holding the state lock
        try:
            with open(blob, "wb") as out:
                limit = int(self.headers.get("Content-Length") or 0) // 2
                for chunk in self._body_chunks():
                    if self.fault and self.fault.kind == "drop_mid_upload" and size + len(chunk) > limit:
                        out.write(chunk[: max(0, limit - size)])
                        self.connection.shutdown(socket.SHUT_RDWR)
                        raise _Dropped()
                    out.write(chunk)
                    h.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
        except _Dropped:
            blob.unlink(missing_ok=True)
            raise
        finally:
            s.lock.acquire()
        pkg = next((p for p in project.packages if p["name"] == name and p["version"] == version), None)
        if pkg is None:
            pkg = {"id": s.next_id(), "name": name, "version": version, "package_type": "generic",
                   "status": "default", "created_at": _now(), "_links": {}, "pipelines": [], "tags": []}
            project.packages.append(pkg)
            project.files[pkg["id"]] = []
        pf = {"id": pf_id, "package_id": pkg["id"], "created_at": _now(), "updated_at": _now(), "size": size,
              "file_store": 1, "file_md5": md5.hexdigest(), "file_sha1": None, "file_name": file_name,
              "file_sha256": h.hexdigest(), "pipelines": []}
        project.files[pkg["id"]].append(pf)
        if self.fault and self.fault.kind == "drop_after_store":
            self.connection.shutdown(socket.SHUT_RDWR)
            raise _Dropped()
        if self.query.get("select") == "package_file":
            return 201, {k: v for k, v in pf.items() if k != "pipelines"}, {}
        return 201, {"message": "201 Created"}, {}

    def _send_blob(self, pf: dict):
        self._send(200, None, raw=self.server_state.blob(pf))
        raise _Sent()

    # package registry API
    def _packages(self, method: str, project: Project, rest: list[str], parts: list[str]):
        if method != "GET":
            raise HTTPError(405, "405 Method Not Allowed")
        if not rest:
            pkgs = [p for p in project.packages
                    if self.query.get("package_type") in (None, p["package_type"])
                    and self.query.get("package_name", "") in p["name"]]
            return self._paginate(pkgs, parts)
        pkg = next((p for p in project.packages if str(p["id"]) == rest[0]), None)
        if pkg is None:
            raise HTTPError(404, "404 Package Not Found")
        if rest[1:] == ["package_files"]:
            return self._paginate(project.files[pkg["id"]], parts)
        if len(rest) == 1:
            return 200, pkg, {}
        raise HTTPError(404, "404 Not Found")

    # releases
    def _release_json(self, project: Project, r: dict) -> dict:
        base = f"{self.server_state.url}/{project.path_with_namespace}/-/releases/{r['tag_name']}"
        links = [{**link, "direct_asset_url": base + "/downloads" + link["direct_asset_path"] if link.get("direct_asset_path") else link["url"]}
                 for link in r["links"]]
        return {**{k: v for k, v in r.items() if k != "links"},
                "assets": {"count": len(links), "sources": [], "links": links},
                "_links": {"self": base}}

    def _releases(self, method: str, project: Project, rest: list[str], parts: list[str]):
        if not rest:
            if method == "GET":
                return self._paginate([self._release_json(project, r) for r in project.releases.values()], parts)
            if method == "POST":
                body = self._json_body()
                tag = body.get("tag_name")
                if not tag:
                    raise HTTPError(400, {"error": "tag_name is missing"})
                if tag in project.releases:
                    raise HTTPError(409, "Release already exists")
                if tag not in project.tags:
                    if not body.get("ref"):
                        raise HTTPError(422, "Ref is not specified")
                    project.tags.add(tag)
                r = {"tag_name": tag, "name": body.get("name") or tag, "description": body.get("description"),
                     "created_at": _now(), "released_at": _now(), "upcoming_release": False,
                     "author": _user("root"), "commit": {"id": "0" * 40}, "links": []}
                for link in (body.get("assets") or {}).get("links", []):
                    self._add_link(r, link)
                project.releases[tag] = r
                return 201, self._release_json(project, r), {}
            raise HTTPError(405, "405 Method Not Allowed")
        tag = unquote(rest[0])
        r = project.releases.get(tag)
        if r is None:
            raise HTTPError(404, "404 Not Found")
        if len(rest) == 1:
            if method == "GET":
                return 200, self._release_json(project, r), {}
            if method == "PUT":
                self._update(r, ("name", "description", "released_at"))
                return 200, self._release_json(project, r), {}
            if method == "DELETE":
                del project.releases[tag]
                return 200, self._release_json(project, r), {}
        if rest[1:3] == ["assets", "links"]:
            return self._links(method, project, r, rest[3:], parts)
        raise HTTPError(404, "404 Not Found")

    def _add_link(self, r: dict, body: dict) -> dict:
        for k in ("name", "url"):
            if not body.get(k):
                raise HTTPError(400, {"error": f"{k} is missing"})
        for other in r["links"]:
            for k in ("name", "url"):
                if other[k] == body[k]:
                    raise HTTPError(400, {"message": {k: ["has already been taken"]}})
        link = {"id": self.server_state.next_id(), "name": body["name"], "url": body["url"],
                "direct_asset_path": body.get("direct_asset_path") or body.get("filepath"),
                "link_type": body.get("link_type", "other"), "external": True}
        r["links"].append(link)
        return link

    def _links(self, method: str, project: Project, r: dict, rest: list[str], parts: list[str]):
        if not rest:
            if method == "GET":
                return self._paginate(r["links"], parts)
            if method == "POST":
                return 201, self._add_link(r, self._json_body()), {}
            raise HTTPError(405, "405 Method Not Allowed")
        link = next((x for x in r["links"] if str(x["id"]) == rest[0]), None)
        if link is None:
            raise HTTPError(404, "404 Not Found")
        if method == "GET":
            return 200, link, {}
        if method == "PUT":
            self._update(link, ("name", "url", "link_type", "direct_asset_path"))
            return 200, link, {}
        if method == "DELETE":
            r["links"].remove(link)
            return 200, link, {}
        raise HTTPError(405, "405 Method Not Allowed")

    # pipeline schedules
    def _schedule_json(self, sch: dict, with_variables: bool) -> dict:
        out = {k: v for k, v in sch.items() if k != "variables"}
        if with_variables:
            out["variables"] = [dict(v) for v in sch["variables"]]
        return out

    def _schedules(self, method: str, project: Project, rest: list[str], parts: list[str]):
        s = self.server_state
        if not rest:
            if method == "GET":
                items = [self._schedule_json(x, False) for x in project.schedules.values()]
                return self._paginate(items, parts)
            if method == "POST":
                body = self._json_body()
                for k in ("description", "ref", "cron"):
                    if not body.get(k):
                        raise HTTPError(400, {"error": f"{k} is missing"})
                sch = {"id": s.next_id(), "description": body["description"], "ref": body["ref"],
                       "cron": body["cron"], "cron_timezone": body.get("cron_timezone", "UTC"),
                       "next_run_at": _now(), "active": _bool(body.get("active", True)),
                       "created_at": _now(), "updated_at": _now(), "owner": _user(self._username()),
                       "variables": []}
                project.schedules[sch["id"]] = sch
                return 201, self._schedule_json(sch, True), {}
            raise HTTPError(405, "405 Method Not Allowed")
        sch = project.schedules.get(int(rest[0])) if rest[0].isdigit() else None
        if sch is None:
            raise HTTPError(404, "404 Not found")
        if rest[1:] == ["take_ownership"] and method == "POST":
            self._drain()  # python-gitlab sends an empty JSON body
            sch["owner"] = _user(self._username())  # any maintainer may; our tokens all are
            sch["updated_at"] = _now()
            return 201, self._schedule_json(sch, True), {}
        if len(rest) == 1:
            if method == "GET":
                return 200, self._schedule_json(sch, True), {}
            if method == "PUT":
                self._owner_only(sch)
                body = self._update(sch, ("description", "ref", "cron", "cron_timezone"))
                if "active" in body:
                    sch["active"] = _bool(body["active"])
                sch["updated_at"] = _now()
                return 200, self._schedule_json(sch, True), {}
            if method == "DELETE":
                del project.schedules[sch["id"]]
                return 204, None, {}
        if rest[1:2] == ["variables"]:
            self._owner_only(sch)
            return self._schedule_variables(method, sch, rest[2:])
        raise HTTPError(404, "404 Not Found")

    def _username(self) -> str:
        return self.auth[1]["username"]

    def _owner_only(self, sch: dict) -> None:
        # GitLab: updating a schedule or its variables needs ownership (maintainers can take it)
        if sch["owner"]["username"] != self._username():
            raise HTTPError(403, "403 Forbidden")

    def _schedule_variables(self, method: str, sch: dict, rest: list[str]):
        variables = sch["variables"]
        if not rest and method == "POST":
            body = self._json_body()
            if not body.get("key") or "value" not in body:
                raise HTTPError(400, {"error": "key is missing, value is missing"})
            if any(v["key"] == body["key"] for v in variables):
                raise HTTPError(400, {"message": {"key": [f"'{body['key']}' has already been taken"]}})
            var = {"key": body["key"], "variable_type": body.get("variable_type", "env_var"), "value": body["value"]}
            variables.append(var)
            return 201, var, {}
        key = unquote(rest[0]) if rest else ""
        var = next((v for v in variables if v["key"] == key), None)
        if var is None:
            raise HTTPError(404, "404 Variable Not Found")
        if method == "PUT":
            body = self._json_body()
            var.update({k: body[k] for k in ("value", "variable_type") if k in body})
            return 200, var, {}
        if method == "DELETE":
            variables.remove(var)
            return 202, var, {}
        raise HTTPError(405, "405 Method Not Allowed")

    # runners
    def _create_runner(self):
        self._require(None, job_ok=False)
        body = self._json_body()
        kind = body.get("runner_type")
        if kind not in RUNNER_TYPES:
            raise HTTPError(400, {"error": "runner_type does not have a valid value"})
        if kind == "group_type" and not body.get("group_id"):
            raise HTTPError(400, {"message": "400 Bad request - group_id is missing"})
        if kind == "project_type" and not body.get("project_id"):
            raise HTTPError(400, {"message": "400 Bad request - project_id is missing"})
        s = self.server_state
        runner = {"id": s.next_id(), "token": "glrt-" + hashlib.sha256(str(s.next_id()).encode()).hexdigest()[:20],
                  "token_expires_at": None}
        if isinstance(body.get("tag_list"), str):  # python-gitlab sends a comma-separated string
            body["tag_list"] = [t for t in body["tag_list"].split(",") if t]
        s.runners.append({**body, **runner})
        return 201, runner, {}

def _bool(v) -> bool:
    return v if isinstance(v, bool) else str(v).lower() in ("true", "1")


class _Dropped(Exception):
    """The fault closed the connection; nothing is sent."""


class _Sent(Exception):
    """The response was already written (a raw download)."""


@pytest.fixture
def gitlab_server(tmp_path_factory):
    """A running fake with one project `training/images`, a private token and a job token."""
    storage = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="gitlab-blobs-"))
    fake = FakeGitLab(storage).start()
    fake.project = fake.add_project("training/images")
    fake.token = fake.add_private_token("glpat-FAKE-secret-0123456789")
    fake.job_token = fake.add_job_token("glcbt-FAKE-job-0123456789", fake.project)
    yield fake
    fake.stop()
    shutil.rmtree(storage, ignore_errors=True)

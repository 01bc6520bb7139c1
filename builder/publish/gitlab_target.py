"""Which GitLab, which project, which token — and how every call to it retries and fails.

Credentials follow python-gitlab's own conventions: a named section of its config file
(`--gitlab NAME`), else `GITLAB_URL` + `GITLAB_PRIVATE_TOKEN`, else the CI job's
`CI_SERVER_URL` + `CI_JOB_TOKEN`. The token lives only in the client's headers: it is kept out
of reprs, and every message that leaves this module is passed through `redact`.

Retries are ours (tenacity), not python-gitlab's: a response hook turns 429/502/503/504 into
`Transient` before python-gitlab sees them, so the Retry-After header survives to the wait.
Every wait is announced once and fits in the policy's total budget: a Retry-After beyond what is
left gives up at once, saying so, instead of sleeping for an hour. URLs are checked before any
request, and credentials in them (https://user:pass@host) are masked in every message.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import gitlab
import requests
import tenacity

from ..console import err
from ..core.errors import BuildFailed, UserError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MASK = "[MASKED]"
USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def mask_userinfo(text: str) -> str:
    """`https://user:pass@host/...` -> `https://[MASKED]@host/...`, anywhere in a message."""
    return USERINFO.sub(f"{MASK}@", text)


def check_url(url: str, field: str) -> str:
    """An http(s) URL with a host and nothing a request line or a message could be bent by."""
    try:
        parts = urllib.parse.urlparse(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # `http://[::1`
        scheme, host = "", None
    if scheme not in ("http", "https") or not host or re.search(r"[\s\x00-\x1f\x7f]", url):
        raise UserError(f"{mask_userinfo(url)!r} is not an http(s) URL with a host", field=field)
    return url


def _say(line: str) -> None:
    err.print(line, markup=False, soft_wrap=True)


class Transient(Exception):
    """A response worth retrying; `retry_after` is the server's Retry-After in seconds."""

    def __init__(self, status: int, retry_after: float | None):
        self.status, self.retry_after = status, retry_after
        super().__init__(f"HTTP {status}" + (f" (Retry-After {retry_after:g}s)" if retry_after else ""))


def parse_retry_after(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now()).total_seconds())


def _raise_transient(response: requests.Response, *args, **kwargs) -> None:
    if response.status_code in RETRY_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.close()
        raise Transient(response.status_code, retry_after)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    budget: float = 600.0  # seconds, all attempts and waits together
    initial: float = 1.0
    maximum: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    progress: Callable[[str], None] = _say  # told once per retry, before its wait

    def retrying(self) -> tenacity.Retrying:
        backoff = tenacity.wait_exponential_jitter(multiplier=self.initial, max=self.maximum, jitter=self.initial)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            # time spent so far: the clock, or the waits asked for when sleep is not real time
            left = self.budget - max(state.seconds_since_start or 0.0, state.idle_for)
            if isinstance(exc, Transient) and exc.retry_after is not None:
                if exc.retry_after > left:
                    raise BuildFailed(f"GitLab asked to wait {exc.retry_after:g} s; more than the {max(left, 0):.0f} s "
                                      f"budget left; giving up (HTTP {exc.status})")
                return exc.retry_after
            return max(0.0, min(backoff(state), left))

        def announce(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            what = describe(exc) if exc is not None else "failed"
            sleep = state.next_action.sleep if state.next_action else 0.0  # set before every sleep
            self.progress(f"GitLab: {mask_userinfo(what)}; retry {state.attempt_number}/{self.attempts - 1} "
                          f"in {sleep:.1f} s")

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=wait,
            stop=tenacity.stop_after_attempt(self.attempts) | tenacity.stop_after_delay(self.budget),
            sleep=self.sleep,
            before_sleep=announce,
            reraise=True,
        )


def is_retryable(exc: BaseException) -> bool:
    # 400/401/403/404 arrive as GitlabHttpError and are never retried.
    return isinstance(
        exc, (Transient, requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout)
    )


@dataclass(frozen=True)
class GitLabTarget:
    url: str
    project: str  # numeric id or full path
    token: str = field(repr=False)
    token_kind: Literal["private", "job"] = "private"
    config_name: str | None = None  # python-gitlab config section, when the client comes from there

    def redact(self, text: str) -> str:
        text = mask_userinfo(text)
        return text.replace(self.token, MASK) if self.token else text

    @property
    def base_url(self) -> str:
        """The URL without credentials: what links and messages may carry."""
        return mask_userinfo(self.url).replace(f"{MASK}@", "")

    def connect(self, timeout: float = 60.0) -> gitlab.Gitlab:
        session = requests.Session()
        session.hooks["response"].append(_raise_transient)
        if self.config_name:
            gl = gitlab.Gitlab.from_config(self.config_name, session=session)
        elif self.token_kind == "job":
            gl = gitlab.Gitlab(self.url, session=session, timeout=timeout, job_token=self.token)
        else:
            gl = gitlab.Gitlab(self.url, session=session, timeout=timeout, private_token=self.token)
        gl.retry_transient_errors = False
        return gl

    def project_api_path(self) -> str:
        return f"{self.base_url.rstrip('/')}/api/v4/projects/{urllib.parse.quote(self.project, safe='')}"


def resolve_target(
    *,
    project: str | None = None,
    gitlab_name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> GitLabTarget:
    """Pick the GitLab instance, project and token from the options and the environment."""
    env = os.environ if env is None else env
    project = project or env.get("CI_PROJECT_ID")
    if not project:
        raise UserError("no project: pass --project ID|PATH (CI sets CI_PROJECT_ID)", field="--project")
    if gitlab_name:
        try:
            cfg = gitlab.config.GitlabConfigParser(gitlab_id=gitlab_name)
        except gitlab.config.ConfigError as e:
            raise UserError(str(e).splitlines()[0], field="--gitlab") from None
        token = cfg.private_token or cfg.job_token or cfg.oauth_token or ""
        return GitLabTarget(check_url(cfg.url or "", "--gitlab"), project, token, "private", config_name=gitlab_name)
    if env.get("GITLAB_PRIVATE_TOKEN"):
        url = env.get("GITLAB_URL") or env.get("CI_SERVER_URL")
        if not url:
            raise UserError("GITLAB_PRIVATE_TOKEN is set but GITLAB_URL is not", field="GITLAB_URL")
        url_field = "GITLAB_URL" if env.get("GITLAB_URL") else "CI_SERVER_URL"
        return GitLabTarget(check_url(url, url_field), project, env["GITLAB_PRIVATE_TOKEN"], "private")
    if env.get("CI_JOB_TOKEN") and env.get("CI_SERVER_URL"):
        return GitLabTarget(check_url(env["CI_SERVER_URL"], "CI_SERVER_URL"), project, env["CI_JOB_TOKEN"], "job")
    raise UserError(
        "no GitLab credentials: set GITLAB_URL and GITLAB_PRIVATE_TOKEN, use --gitlab NAME "
        "(python-gitlab config), or run inside GitLab CI",
        field="GITLAB_PRIVATE_TOKEN",
    )


def describe(exc: BaseException) -> str:
    """One line for an API failure, built from its status and message only."""
    if isinstance(exc, gitlab.GitlabError):
        code = f"HTTP {exc.response_code}: " if exc.response_code else ""
        return f"{code}{exc.error_message}"
    if isinstance(exc, Transient):
        return f"GitLab kept answering {exc} until the retry budget ran out"
    if isinstance(exc, requests.RequestException):
        return f"connection to GitLab failed: {type(exc).__name__}"
    return str(exc)


@contextmanager
def api_errors(target: GitLabTarget, action: str) -> Iterator[None]:
    """Turn API failures into the CLI's exit codes, with the token scrubbed from the message."""
    try:
        yield
    except gitlab.GitlabError as e:
        msg = target.redact(f"{action}: {describe(e)}")
        if e.response_code in (401, 403):
            raise UserError(f"{msg} (check the token and its scope)", field="token") from None
        if e.response_code == 404:
            raise UserError(f"{msg} (does project {target.project} exist?)", field="--project") from None
        raise BuildFailed(msg) from None
    except (Transient, requests.RequestException) as e:
        raise BuildFailed(target.redact(f"{action}: {describe(e)}")) from None

"""The one jinja2 Environment every rendered file goes through.

StrictUndefined turns a missing variable into an error at render time instead of an empty
string in a packer template or an OVF descriptor.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import TypeVar

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .core.errors import UserError

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


def _hcl(value) -> str:
    """HCL2 literal for strings, numbers, bools and lists (JSON syntax is valid HCL2 for these)."""
    return json.dumps(value)


def _vyos(value) -> str:
    """A VyOS config value: bare when it is one word, else double-quoted. Callers validate that
    the value holds no quote, backslash, brace or newline (VyOS has no escapes for them)."""
    text = str(value)
    if any(c in text for c in '"\\{}\n'):
        raise ValueError(f"{text!r} cannot be written as a VyOS value")
    return text if re.fullmatch(r"[A-Za-z0-9._:/+-]+", text) else f'"{text}"'


Env = TypeVar("Env", bound=jinja2.Environment)


def _new(cls: type[Env], loader: jinja2.BaseLoader | None = None) -> Env:
    """Every environment, sandboxed or not, with the same options and filters."""
    env = cls(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
              lstrip_blocks=True, autoescape=False)
    env.filters["hcl"] = _hcl
    env.filters["vyos"] = _vyos
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["tojson"] = lambda v: json.dumps(v, sort_keys=True)
    return env


class _Sandbox(SandboxedEnvironment):
    """jinja2's sandbox blocks attribute walks but not `{{ "x" * 10**12 }}`: bound those too."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_ITEMS = 1 << 20

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, int) and abs(right) > 1024:
            raise SecurityError("exponent too large in a template")
        if operator == "*" and any(isinstance(a, str | list | tuple) for a in (left, right)):
            n = right if isinstance(right, int) else left
            if isinstance(n, int) and n * max(len(left if n is right else right), 1) > self.MAX_ITEMS:
                raise SecurityError("repetition too large in a template")
        return super().call_binop(context, operator, left, right)


@cache
def environment(*extra_dirs: str) -> jinja2.Environment:
    """Templates resolve first in extra_dirs (an image's own folder), then in builder/templates.

    With extra_dirs the templates are an image's: data from a merge request, rendered on a root
    runner, so they get jinja2's sandbox (no `cycler.__init__.__globals__` walk to `os`).
    builder's own templates are code and render unsandboxed."""
    cls = _Sandbox if extra_dirs else jinja2.Environment
    loader = jinja2.FileSystemLoader([*extra_dirs, str(PACKAGE_TEMPLATES)])
    return _new(cls, loader)


@cache
def sandboxed() -> SandboxedEnvironment:
    """For template strings taken from an image spec (boot checks)."""
    return _new(_Sandbox)


def render(name: str, *extra_dirs: str | Path, **context) -> str:
    env = environment(*(str(d) for d in extra_dirs))
    if not extra_dirs:
        return env.get_template(name).render(**context)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateError as e:  # an image's template is input: its mistakes are bad input
        raise _user_error(e, name) from None


def render_string(source: str, **context) -> str:
    """Template strings come from image specs, never from builder: always sandboxed."""
    try:
        return sandboxed().from_string(source).render(**context)
    except jinja2.TemplateError as e:
        raise _user_error(e, None) from None


def _user_error(e: jinja2.TemplateError, name: str | None) -> UserError:
    line = getattr(e, "lineno", None)
    return UserError(f"template failed: {e.message or type(e).__name__}", file=getattr(e, "name", None) or name,
                     field=f"line {line}" if line else None)

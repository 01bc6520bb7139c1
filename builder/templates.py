"""The one jinja2 Environment every rendered file goes through.

StrictUndefined turns a missing variable into an error at render time instead of an empty
string in a packer template or an OVF descriptor.
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"


def _hcl(value) -> str:
    """HCL2 literal for strings, numbers, bools and lists (JSON syntax is valid HCL2 for these)."""
    return json.dumps(value)


@lru_cache(maxsize=None)
def environment(*extra_dirs: str) -> jinja2.Environment:
    """Templates resolve first in extra_dirs (an image's own folder), then in builder/templates."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*extra_dirs, str(PACKAGE_TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["hcl"] = _hcl
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["tojson"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render(name: str, *extra_dirs: str | Path, **context) -> str:
    return environment(*(str(d) for d in extra_dirs)).get_template(name).render(**context)


def render_string(source: str, **context) -> str:
    return environment().from_string(source).render(**context)

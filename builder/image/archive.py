"""The state of the Debian archive a rootfs installs from, as a cache input.

A nightly rebuild must pick up Debian's updates, yet an unchanged archive should cost nothing.
The suite's signed index (`dists/<suite>/InRelease`, else `Release`) changes whenever the
archive's contents do, so its digest, fetched at build time, goes into the rootfs key and into
the manifest. A mirror without the suite answers 404: that is bad input, found before any work.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import requests

from ..core.errors import BuildFailed, UserError

INDEX_FILES = ("InRelease", "Release")
MAX_INDEX_BYTES = 4 << 20  # bookworm's InRelease is ~150 KiB
TIMEOUT = (10.0, 30.0)  # connect, read (seconds)
SUITE_RE = re.compile(r"^[a-z][a-z0-9.-]{0,63}$")


def index_urls(mirror: str, suite: str) -> list[str]:
    return [f"{mirror.rstrip('/')}/dists/{suite}/{name}" for name in INDEX_FILES]


def _fetch(url: str) -> bytes | None:
    """The file's bytes, or None on 404; bounded in size and time."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        path = urlsplit(url).path
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_INDEX_BYTES + 1)
        except FileNotFoundError:
            return None
    else:
        with requests.get(url, stream=True, timeout=TIMEOUT) as r:
            if r.status_code == 404:
                return None
            r.raise_for_status()
            data = b""
            for chunk in r.iter_content(64 << 10):
                data += chunk
                if len(data) > MAX_INDEX_BYTES:
                    break
    if len(data) > MAX_INDEX_BYTES:
        raise BuildFailed(f"{url}: larger than {MAX_INDEX_BYTES} bytes; not a Debian suite index")
    return data


def suite_digest(mirror: str, suite: str, *, file: str | None = None) -> str:
    """`sha256:<hex>` of the suite's index on the mirror."""
    if not SUITE_RE.match(suite):
        raise UserError(f"{suite!r} is not a Debian suite name", file=file, field="distribution")
    if urlsplit(mirror).scheme not in ("http", "https", "file"):
        raise UserError(f"{mirror!r}: want an http, https or file URL", file=file, field="mirror")
    for url in index_urls(mirror, suite):
        try:
            data = _fetch(url)
        except requests.RequestException as e:
            raise BuildFailed(f"cannot read the archive state from {url}: {type(e).__name__}: {e}") from None
        if data is not None:
            return "sha256:" + hashlib.sha256(data).hexdigest()
    raise UserError(f"the mirror {mirror} has no suite {suite!r} (no dists/{suite}/InRelease or Release)",
                    file=file, field="distribution")

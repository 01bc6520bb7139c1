"""Content digests of files: what the store, the registry check, the export and the stage inputs
compare (hex SHA-256, read in chunks so multi-GB images stay out of memory)."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 4 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()

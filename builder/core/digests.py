"""Content digests of files: what the store, the registry check, the export, the OVA manifest
check and the stage inputs compare (hex, read in chunks so multi-GB images stay out of memory)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO

CHUNK = 4 << 20


def hash_stream(f: IO[bytes], algo: str = "sha256") -> str:
    """Hex digest of what is left in `f` (`algo` as an OVF manifest names it: SHA256, SHA1)."""
    h = hashlib.new(algo.lower())
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hash_stream(f)

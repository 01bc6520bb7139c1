"""Upload a sparse image of SIZE MiB to the fake GitLab and print throughput and peak memory.

    .venv/bin/python bench/gitlab_upload.py [SIZE_MIB]      (default 1024)

Peak RSS should stay flat whatever SIZE is: the file is streamed, never read whole.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.publish.gitlab import publish_gitlab
from tests.fakes.gitlab_helpers import make_version, target
from tests.fakes.gitlab_server import FakeGitLab


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "blobs").mkdir()
        server = FakeGitLab(tmp / "blobs").start()
        server.project = server.add_project("training/images")
        server.token = server.add_private_token("glpat-bench")
        d = make_version(tmp / "out", sparse_size=size << 20)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.monotonic()
        publish_gitlab(d, target(server))
        dt = time.monotonic() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        server.stop()
    total = 3 * size  # qcow2, vmdk, ova
    print(f"uploaded {total} MiB in {dt:.1f} s ({total / dt:.0f} MiB/s incl. verify + server hashing)")
    print(f"peak RSS {rss1 // 1024} MiB (before publish {rss0 // 1024} MiB); "
          f"ratio peak/file size {rss1 / 1024 / size:.3f}")


if __name__ == "__main__":
    main()

"""Where runner set-up commands run: this machine, or a runner VM over SSH."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core import proc

# LogLevel=ERROR: ssh's notices ("Permanently added ... to the list of known hosts") go to
# stderr, which proc merges into the output that `hostname` or `mktemp` answers are read from
SSH_OPTS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=20",
            "-o", "LogLevel=ERROR")


@dataclass(frozen=True)
class Target:
    ssh: str | None = None  # user@host; None runs locally
    ssh_config: Path | None = None  # `ssh -F`: identity, known hosts, jump host for this target

    @property
    def ssh_opts(self) -> tuple[str, ...]:
        return (("-F", str(self.ssh_config)) if self.ssh_config else ()) + SSH_OPTS

    def argv(self, argv: list[str], root: bool = False) -> list[str]:
        if self.ssh is None:
            return list(argv)
        # over SSH the login user is usually not root; sudo -n fails fast instead of prompting
        cmd = (["sudo", "-n"] if root else []) + list(argv)
        return ["ssh", *self.ssh_opts, self.ssh, shlex.join(cmd)]

    def run(self, argv: list[str], *, root: bool = False, check: bool = True,
            stdin_data: bytes | None = None, timeout: float = 600) -> proc.Result:
        return proc.run(self.argv(argv, root), check=check, stdin_data=stdin_data, timeout=timeout,
                        what=Path(argv[0]).name)

    def has(self, command: str) -> bool:
        return self.run(["sh", "-c", f"command -v {shlex.quote(command)}"], check=False).returncode == 0

    def read(self, path: str) -> str:
        return self.run(["cat", path]).output

    @contextmanager
    def staged(self, local: Path) -> Iterator[str]:
        """A controller-side file on the target for the duration of the block: copied into a
        private directory there (a fixed /tmp name could be anyone's), removed afterwards."""
        if self.ssh is None:
            yield str(local)
            return
        remote_dir = self.run(["mktemp", "-d", "/tmp/builder.XXXXXXXX"]).output.strip()
        try:
            proc.run(["scp", "-q", *self.ssh_opts, str(local), f"{self.ssh}:{remote_dir}/{local.name}"],
                     timeout=600, what="scp")
            yield f"{remote_dir}/{local.name}"
        finally:
            self.run(["rm", "-rf", remote_dir], check=False)

    def write(self, path: str, content: str, mode: str = "0600") -> None:
        """Write a file as root with its mode set before any content lands in it."""
        q = shlex.quote(path)
        script = f"umask 077 && mkdir -p \"$(dirname {q})\" && cat > {q} && chmod {mode} {q}"
        self.run(["sh", "-c", script], root=True, stdin_data=content.encode())

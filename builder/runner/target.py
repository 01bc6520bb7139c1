"""Where runner set-up commands run: this machine, or a runner VM over SSH."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc

SSH_OPTS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=20")


@dataclass(frozen=True)
class Target:
    ssh: str | None = None  # user@host; None runs locally
    ssh_opts: tuple[str, ...] = field(default=SSH_OPTS)

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

    def put(self, local: Path) -> str:
        """Make a controller-side file available on the target; returns its path there."""
        if self.ssh is None:
            return str(local)
        remote = f"/tmp/{local.name}"
        proc.run(["scp", "-q", *self.ssh_opts, str(local), f"{self.ssh}:{remote}"], timeout=600)
        return remote

    def write(self, path: str, content: str, mode: str = "0600") -> None:
        """Write a file as root with its mode set before any content lands in it."""
        script = f"umask 077 && mkdir -p \"$(dirname {shlex.quote(path)})\" && cat > {shlex.quote(path)} && chmod {mode} {shlex.quote(path)}"
        self.run(["sh", "-c", script], root=True, stdin_data=content.encode())

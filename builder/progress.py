"""Per-stage progress: a live status line on a terminal, throttled plain lines in CI logs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.markup import escape
from rich.status import Status

from .console import err

PLAIN_EVERY = 10.0  # seconds between repeated status lines when not on a terminal


class Reporter:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.live = err.is_terminal and not quiet
        self._status: Status | None = None
        self._stage = ""
        self._last_plain = 0.0
        self.durations: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        self._stage = name
        t0 = time.monotonic()
        if self.live:
            self._status = err.status(f"[bold]{name}[/]: {escape(what)}")
            self._status.start()
        elif not self.quiet:
            err.print(f"{name}: {escape(what)}")
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.monotonic() - t0
            self.durations[name] = round(dt, 2)
            if self._status:
                self._status.stop()
                self._status = None
            if not self.quiet:
                mark = "[green]✓[/]" if ok else "[red]✗[/]"
                err.print(f"{mark} {name} ({dt:.1f} s)")

    def update(self, text: str) -> None:
        text = text.strip().splitlines()[-1][:160] if text.strip() else ""
        if not text or self.quiet:
            return
        if self._status:
            self._status.update(f"[bold]{self._stage}[/]: {escape(text)}")
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY:
            self._last_plain = time.monotonic()
            err.print(f"  {self._stage}: {escape(text)}")

    def note(self, text: str) -> None:
        if not self.quiet:
            err.print(f"  {escape(text)}")

    def cached(self, name: str, key: str) -> None:
        self.durations[name] = 0.0
        if not self.quiet:
            err.print(f"[green]✓[/] {name} (cached {key[:12]})")

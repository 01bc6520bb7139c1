"""Per-stage progress: a live status line on a terminal, throttled plain lines in CI logs.

Stages may run side by side (the export conversions beside the tests): each thread reports for
the stage it is in, and the status line shows every stage that is running.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from rich.markup import escape
from rich.status import Status

from .console import err

PLAIN_EVERY = 10.0  # seconds between repeated status lines of one stage when not on a terminal
SHARED_WIDTH = 70  # characters of each stage's line when several share the status line


class Reporter:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.live = err.is_terminal and not quiet
        self._status: Status | None = None
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}  # running stage -> its latest line, in start order
        self._last_plain: dict[str, float] = {}
        self._here = threading.local()  # the stage this thread is in
        self.durations: dict[str, float] = {}

    def _render(self) -> str:
        width = 160 if len(self._active) == 1 else SHARED_WIDTH
        return "   ".join(f"[bold]{n}[/]: {escape(t[:width])}" for n, t in self._active.items())

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        self._here.stage = name
        t0 = time.monotonic()
        with self._lock:
            self._active[name] = what
            if self.live:
                if self._status is None:
                    self._status = err.status(self._render())
                    self._status.start()
                else:
                    self._status.update(self._render())
            elif not self.quiet:
                err.print(f"{name}: {escape(what)}")
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.monotonic() - t0
            self._here.stage = ""
            with self._lock:
                self.durations[name] = round(dt, 2)
                del self._active[name]
                if self._status and not self._active:
                    self._status.stop()
                    self._status = None
                elif self._status:
                    self._status.update(self._render())
                if not self.quiet:
                    mark = "[green]✓[/]" if ok else "[red]✗[/]"
                    err.print(f"{mark} {name} ({dt:.1f} s)")

    def update(self, text: str) -> None:
        text = text.strip().splitlines()[-1][:160] if text.strip() else ""
        if not text or self.quiet:
            return
        with self._lock:
            name = getattr(self._here, "stage", "")
            if name not in self._active:  # a helper thread of the one running stage
                if len(self._active) != 1:
                    return
                name = next(iter(self._active))
            self._active[name] = text
            if self._status:
                self._status.update(self._render())
            elif time.monotonic() - self._last_plain.get(name, 0.0) >= PLAIN_EVERY:
                self._last_plain[name] = time.monotonic()
                err.print(f"  {name}: {escape(text)}")

    def note(self, text: str) -> None:
        if not self.quiet:
            err.print(f"  {escape(text)}")

    def cached(self, name: str, key: str) -> None:
        self.durations[name] = 0.0
        if not self.quiet:
            err.print(f"[green]✓[/] {name} (cached {key[:12]})")

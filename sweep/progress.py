"""A one-line progress bar with an ETA, on stderr, for runs that take more than a few seconds."""
from __future__ import annotations

import sys
import time


class Progress:
    """Shown only on a terminal, and only once ``delay`` seconds have passed; ``quiet`` hides it."""

    def __init__(self, total: int, unit: str, quiet: bool = False, delay: float = 2.0, stream=None):
        self.total, self.unit, self.delay = max(total, 1), unit, delay
        self.stream = stream or sys.stderr
        self.enabled = not quiet and getattr(self.stream, "isatty", lambda: False)()
        self.started = time.perf_counter()
        self.shown = False
        self.note = ""

    def update(self, done: int, note: str = "") -> None:
        self.note = note or self.note
        elapsed = time.perf_counter() - self.started
        if not self.enabled or elapsed < self.delay:
            return
        frac = min(done / self.total, 1.0)
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        eta_text = f"ETA {eta:4.0f} s" if eta == eta else "ETA    ?"
        self.stream.write(f"\r[{bar}] {done}/{self.total} {self.unit}  {eta_text}  {self.note}"[:120])
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()

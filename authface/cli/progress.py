"""Progress on the console: a tqdm bar on a terminal, a periodic one-line report when output is a log file or CI."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Counts finished items of a known total.

    On a terminal it draws a tqdm bar; otherwise (a log file, CI) it prints ``"<desc>: 12/40 photo (30%),
    1.4 s/photo, ETA 39 s"`` at most every ``interval`` seconds and once at the end, so long work is never silent.
    ``write(line)`` prints a message without breaking the bar. ``set_postfix(**values)`` shows live values (loss,
    learning rate) on the bar and in the periodic line.
    """

    def __init__(self, total: int, desc: str, unit: str = "item", interval: float = 30.0,
                 stream: TextIO | None = None, initial: int = 0):  # fmt: skip
        from tqdm import tqdm

        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = self._start_n = initial
        self.postfix: dict[str, Any] = {}
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = self._last = time.monotonic()
        self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, file=self.stream, dynamic_ncols=True) \
            if self.tty else None  # fmt: skip

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.n >= self.total:
            self._last = now
            print(self.line(now), file=self.stream, flush=True)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def line(self, now: float | None = None) -> str:
        """The one-line report: count, percentage, seconds per unit, ETA, live values."""
        now = time.monotonic() if now is None else now
        done = self.n - self._start_n
        pct = 100.0 * self.n / self.total if self.total else 100.0
        text = f"authface: {self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%)"
        if done > 0:
            per = (now - self._t0) / done
            text += f", {per:.2f} s/{self.unit}, ETA {_duration(per * (self.total - self.n))}"
        if self.postfix:
            text += ", " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.postfix.items())
        return text

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"

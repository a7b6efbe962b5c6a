"""Progress lines for long steps: counts and rates in French, never values.

Why: a national run extracts, checks and writes millions of rows for minutes; an
operator watching the task log needs to see it move, at a pace a log can bear (one
line every few seconds at most) and without personal data (counts only).

    with Progress(log, "extraction", unit="lignes") as p:
        for batch in batches:
            ...
            p.advance(len(batch))

logs ``extraction : 120 000 lignes, 41 000 lignes/s`` at most every ``every`` seconds,
then ``extraction : 1 234 567 lignes en 30,1 s (41 000 lignes/s)`` at the end. Hot
loops count locally and call :meth:`Progress.advance` once per few thousand items:
it reads the clock on every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

EVERY_S = 5.0


def count_fr(n: int | float) -> str:
    """``1234567`` → ``1 234 567`` (French digit grouping, plain spaces for the logs)."""
    return f"{int(n):,}".replace(",", " ")


def seconds_fr(s: float) -> str:
    """``30.14`` → ``30,1 s``; ``125`` → ``2 min 05 s``."""
    if s < 90:
        return f"{s:.1f} s".replace(".", ",")
    minutes, seconds = divmod(round(s), 60)
    if minutes < 90:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts items of one step and logs the pace (see the module docstring).

    ``total`` (when known) adds a percentage; ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        log: logging.Logger,
        label: str,
        *,
        unit: str = "lignes",
        total: int | None = None,
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.INFO,
    ):
        self.log = log
        self.label = label
        self.unit = unit
        self.total = total
        self.every = every
        self.clock = clock
        self.level = level
        self.count = 0
        self.started = self._last_time = 0.0
        self._last_count = 0
        self._next = 0.0

    def __enter__(self) -> Progress:
        self.started = self._last_time = self.clock()
        self._next = self.started + self.every
        return self

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items; log a line when ``every`` seconds have passed."""
        self.count += n
        now = self.clock()
        if now >= self._next:
            rate = _rate(self.count - self._last_count, now - self._last_time, self.unit)
            self.log.log(self.level, "%s : %s%s", self.label, self._counted(), rate and f", {rate}")
            self._last_time, self._last_count = now, self.count
            self._next = now + self.every

    def __exit__(self, exc_type, exc, tb) -> None:
        elapsed = self.clock() - self.started
        rate = _rate(self.count, elapsed, self.unit)
        if exc_type is None:
            self.log.log(
                self.level,
                "%s : %s en %s%s",
                self.label,
                self._counted(),
                seconds_fr(elapsed),
                rate and f" ({rate})",
            )
        else:
            self.log.log(
                self.level,
                "%s : interrompu après %s (%s)",
                self.label,
                self._counted(),
                seconds_fr(elapsed),
            )

    def _counted(self) -> str:
        text = f"{count_fr(self.count)} {self.unit}"
        if self.total:
            text += f" sur {count_fr(self.total)} ({100 * self.count // self.total} %)"
        return text


def _rate(count: int, seconds: float, unit: str) -> str:
    """``41 000 lignes/s``; empty when no time has passed (an empty step, a test clock)."""
    if seconds <= 0:
        return ""
    rate = count / seconds
    if rate < 10:
        return f"{rate:.2g} {unit}/s".replace(".", ",")
    return f"{count_fr(float(f'{rate:.3g}'))} {unit}/s"  # 3 significant digits: 41 200

"""Plain-text output of the ``torchstreamer`` command: aligned fields, numbers, a progress bar.

Core depends on torch alone, so the command draws its own progress bar and tables.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from types import TracebackType
from typing import TextIO

__all__ = ["Progress", "fields", "micro", "samples"]


def fields(rows: Sequence[tuple[str, str]], *, indent: int = 2, width: int = 0) -> str:
    """Renders ``(name, value)`` pairs as two aligned columns.

    Args:
        rows: the pairs.
        indent: spaces before each name. (Default: 2)
        width: the least width of the name column, to align several blocks. (Default: 0)

    Example:
        >>> print(fields([("rate", "1/2"), ("receptive field", "8 samples")]))
          rate             1/2
          receptive field  8 samples
    """
    width = max([width, *(len(name) for name, _ in rows)])
    return "\n".join(f"{' ' * indent}{name.ljust(width)}  {value}".rstrip() for name, value in rows)


def samples(count: Fraction | int, sample_rate: float | None) -> str:
    """A count of samples, with its duration when the sample rate is known.

    Example:
        >>> samples(Fraction(5, 2), 16000.0)
        '5/2 samples (0.156 ms at 16000 Hz)'
    """
    unit = "sample" if count == 1 else "samples"
    text = f"{count} {unit}"
    if sample_rate is None:
        return text
    return f"{text} ({float(count) / sample_rate * 1000:.3g} ms at {sample_rate:g} Hz)"


def micro(seconds: float) -> str:
    """A duration in microseconds, or in milliseconds or seconds when that reads better.

    Example:
        >>> micro(0.0123), micro(4.0)
        ('12.3 ms', '4 s')
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} {_MICRO}s"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def _encodable(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# "us" where the console cannot show the micro sign (some Windows code pages, LANG=C pipes)
_MICRO = "µ" if _encodable("µ") else "u"


class Progress:
    """A one-line progress bar on a terminal, drawn only once a task has run for a while.

    Nothing is written when ``stream`` is not a terminal, or when the task ends within
    ``delay`` seconds, so short runs and piped output stay clean. Used as a context manager,
    it erases its line on exit.

    Args:
        label: what is being done.
        total: units of work in all.
        stream: where to draw. (Default: ``sys.stderr``)
        delay: seconds before the bar first appears. (Default: 0.5)
    """

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, delay: float = 0.5
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty is not None and isatty())
        self.start = time.perf_counter()
        self.delay = delay
        self.next_draw = self.start + delay
        self.drawn = False

    def advance(self, units: int = 1) -> None:
        """Records ``units`` more units done; redraws at most ten times a second."""
        self.done += units
        if self.enabled:
            now = time.perf_counter()
            if now >= self.next_draw:
                self.next_draw = now + 0.1
                self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        width = 30
        filled = int(fraction * width)
        bar = "#" * filled + "." * (width - filled)
        elapsed = now - self.start
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {elapsed:5.1f} s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Erases the bar, if it was drawn."""
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

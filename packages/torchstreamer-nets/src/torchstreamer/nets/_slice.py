"""The stream of a constant slice of the time axis: ``y[..., start:stop:step]``."""

from collections.abc import Callable
from typing import Optional

from torch import Tensor

from torchstreamer.core import BaseStream, NotStreamableError, TimeBuffer, Timing

__all__ = ["TimeSlice1dStream"]


class TimeSlice1dStream(BaseStream):
    """Streams ``y[..., start:stop:step]``, a slice of the time axis with constant bounds.

    ``start`` from the beginning (``>= 0``) with any ``stop`` and ``step``: samples are passed
    on as soon as they are known to be inside the slice; with a negative ``stop`` the last
    ``-stop`` samples are held back (fewer when the streams before it are known to owe that many
    to the end of the signal, see :meth:`follow`), and dropped at the end. ``start`` from the end
    (``< 0``, with ``step`` 1 and ``stop`` from the end or ``None``): the last ``-start``
    samples are held and the slice of them is emitted on ``final=True``.

    Args:
        start: first index, as in Python. (``None`` for 0)
        stop: end index, as in Python. (``None`` for the end)
        step: stride, at least 1. (``None`` for 1)

    Raises:
        NotStreamableError: for a negative or zero step, or a slice from the end with a step
            or a stop from the beginning.
    """

    def __init__(self, start: Optional[int], stop: Optional[int], step: Optional[int]) -> None:
        super().__init__()
        step = 1 if step is None else step
        start = 0 if start is None else start
        if step < 1:
            raise NotStreamableError(f"a time slice with step {step} reverses or repeats time")
        if start < 0 and (step != 1 or (stop is not None and stop >= 0)):
            raise NotStreamableError(
                f"the time slice [{start}:{stop}:{step}] counts from the end of the signal "
                "both ways; only [-n:] and [-n:-m] can be streamed"
            )
        self.start = start
        self.stop = stop if stop is not None else 0
        self.bounded = stop is not None and stop >= 0
        self.stride = step
        self.buffer = TimeBuffer()
        self.received = 0
        self.base = 0
        self.next = start
        self.stream_name = "TimeSlice1dStream"
        self.module_hint = f"[..., {start}:{'' if stop is None else stop}:{step}]"
        self.__dict__["_input_length"] = None

    def follow(self, input_length: Callable[[], int]) -> None:
        """Gives the slice a way to know how long its input would be if the signal ended now.

        With it, the slice holds back only the samples that may still fall among the last
        ``-stop``: none after a padded convolution whose right-padding outputs are the ones
        dropped (a TCN's chomp). The callable is not a child module: it reads the caller.
        """
        self.__dict__["_input_length"] = input_length

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if x.requires_grad:
            # what the buffer keeps must not hold the graph of earlier blocks
            x = x.detach()
        if self.start < 0:
            return self._from_end(x, final)
        end = self.received + x.size(-1)
        self.received = end
        if self.bounded:
            limit = min(end, self.stop)
        else:
            limit = end + self.stop
            input_length = self.__dict__["_input_length"]
            if not final and self.stop < 0 and input_length is not None:
                # the input is already this long, whatever comes: what it still owes counts
                limit = min(input_length() + self.stop, end)
        y: Optional[Tensor] = None
        if self.next < limit:
            stored = self.buffer.held > 0
            view = self.buffer.extend(x)
            y = view[..., self.next - self.base : limit - self.base : self.stride]
            if stored:
                # the view is the buffer's storage, which the next block overwrites
                y = y.clone()
            self.next += y.size(-1) * self.stride
            self.buffer.advance(view, self.next - self.base)
            self.base = self.next
        elif x.size(-1) > 0 and not (self.bounded and self.next >= self.stop):
            view = self.buffer.extend(x)
            self.buffer.advance(view, self.next - self.base)
            self.base = max(self.next, self.base)
        if final:
            self.reset_state()
        return y if y is not None and y.size(-1) > 0 else None

    def _from_end(self, x: Tensor, final: bool) -> Optional[Tensor]:
        view = self.buffer.extend(x)
        if not final:
            self.buffer.advance(view, max(view.size(-1) + self.start, 0))
            return None
        y = view[..., self.start : (self.stop if self.stop < 0 else None)].clone()
        self.reset_state()
        return y if y.size(-1) > 0 else None

    def reset_state(self) -> None:
        self.buffer.clear()
        self.received = 0
        self.base = 0
        self.next = self.start

    def output_length(self, length: int) -> int:
        stop = None if self.stop == 0 and not self.bounded else self.stop
        return len(range(length)[self.start : stop : self.stride])

    def timing(self) -> Timing:
        if self.start < 0:
            raise NotImplementedError(
                "a time slice from the end of the signal has no steady-state timing"
            )
        return Timing.window(1, self.stride, self.start)

    def extra_repr(self) -> str:
        return self.module_hint

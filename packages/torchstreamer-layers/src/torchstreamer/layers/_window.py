"""Streams for layers that slide a window over a padded input: conv, pooling, padding."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import BaseStream, Edges, TimeBuffer, Timing, check_edges

__all__ = ["WindowStream"]


class WindowStream(BaseStream):
    """Streams ``module`` whose output ``j`` is a function of one window of padded input.

    Window ``j`` covers padded positions ``j * stride - pad_left`` to that plus ``span - 1`` in
    the input's own indices. The stream splits the outputs three ways:

    - windows inside the input (the steady state) go through :meth:`valid_windows`, the layer's
      functional form without padding, over the held samples;
    - windows that reach into the left padding are computed by ``module`` itself on the first
      samples, as soon as the padding is known (reflect padding needs ``pad_left + 1`` samples);
    - on ``final=True``, the rest (right padding, ``ceil_mode`` windows) is computed by
      ``module`` on the held tail, which starts on a stride boundary so that its windows are the
      whole signal's.

    So every padding mode and edge option of the module is reproduced by the module itself,
    and the per-block path runs one functional call.

    Subclasses set the geometry in ``__init__`` through :meth:`configure` and implement
    :meth:`valid_windows` and :meth:`output_length`.
    """

    def __init__(self, module: nn.Module, *, edges: Edges = "pad") -> None:
        super().__init__()
        check_edges(edges)
        self.module = module
        self.edges = edges
        self.buffer = TimeBuffer()
        self.span = 1
        self.stride = 1
        self.pad_left = 0
        self.pad_right = 0
        self.known_after = 0
        self.keep = 0
        self.tail = False
        self.base = 0
        self.next_out = 0
        self.received = 0
        self.pointwise = False

    def configure(
        self,
        *,
        span: int,
        stride: int,
        pad_left: int,
        pad_right: int,
        known_after: int,
        ceil_mode: bool = False,
    ) -> None:
        """Sets the window geometry.

        Args:
            span: input samples one window covers (``dilation * (kernel_size - 1) + 1``).
            stride: input samples between windows.
            pad_left: padding before the first sample.
            pad_right: padding after the last sample (up to ``stride - 1`` more with
                ``ceil_mode``; :meth:`output_length` decides).
            known_after: input samples needed before the left padding is known (0 for
                constant padding, 1 for replicate, ``max(pad_left, pad_right) + 1`` for
                reflect).
            ceil_mode: whether the module adds a last, partial window. (Default: False)
        """
        if self.edges == "valid":
            pad_left = pad_right = known_after = 0
            ceil_mode = False
        self.span = span
        self.stride = stride
        self.pad_left = pad_left
        self.pad_right = pad_right
        self.known_after = known_after
        # whether the end of the stream needs the module itself (padding or a partial window)
        self.tail = pad_left > 0 or pad_right > 0 or ceil_mode
        # the tail held for that call: never empty, and long enough for reflect padding
        self.keep = max(pad_left, pad_right) + 1 if known_after > 1 else int(self.tail)
        # one output per input sample from that sample alone: nothing to hold, nothing to count
        self.pointwise = span == 1 and stride == 1 and not self.tail

    def valid_windows(self, x: Tensor) -> Tensor:
        """The layer without padding over ``x``: one output per full window, stride applied."""
        raise NotImplementedError

    def output_length(self, length: int) -> int:
        """How many outputs ``module`` gives for an input of ``length`` samples."""
        raise NotImplementedError

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        size = x.size(-1)
        if self.pointwise:
            return self.valid_windows(x) if size > 0 else None
        received = self.received
        end = received + size
        buffer = self.buffer
        if not final and end < self.next_out * self.stride - self.pad_left + self.span:
            # the next window is not complete: hold the block, nothing else changes
            if size > 0:
                buffer.append(x)
                self.received = end
            return None
        if size == 0 and not final and received > 0:
            return None
        view = buffer.extend(x)
        if final:
            # nothing is counted before the module has run: extend() alone changes no state
            flushed = self._finish(view, end)
            self.reset_state()
            return flushed
        self.received = end
        stride = self.stride
        next_out = self.next_out
        reach = end - self.span + self.pad_left
        ready = reach // stride + 1 if reach >= 0 else 0
        y: Optional[Tensor] = None
        if ready > next_out:
            if next_out * stride < self.pad_left:
                if end >= self.known_after:
                    # windows reaching into the left padding: computed by the module itself
                    last = min(ready, (self.pad_left + stride - 1) // stride)
                    y = self._left_edge(view, end, last)
                    next_out = last
                else:
                    ready = next_out
            if ready > next_out:
                offset = next_out * stride - self.pad_left - self.base
                length = (ready - next_out - 1) * stride + self.span
                middle = self.valid_windows(buffer.narrow(view, offset, length))
                y = middle if y is None else torch.cat([y, middle], -1)
                next_out = ready
            self.next_out = next_out
        # hold what later windows (and the final module call) need
        start = next_out * stride - self.pad_left
        if self.tail:
            start = min(start, end - self.keep)
            start = max(0, start - start % stride)
        base = self.base
        if start < base:
            start = base
        buffer.advance(view, start - base)
        if start != base:
            self.base = start
        return y

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        if self.pointwise:
            return outputs
        # the last of those outputs is emitted once its window has arrived, and the first
        # outputs not before the left padding is known
        end = (self.next_out + outputs - 1) * self.stride - self.pad_left + self.span
        if self.next_out * self.stride < self.pad_left:
            end = max(end, self.known_after)
        return max(end - self.received, 1)

    def _left_edge(self, view: Tensor, end: int, last: int) -> Tensor:
        """Outputs ``next_out`` to ``last - 1``, whose windows reach into the left padding."""
        needed = (last - 1) * self.stride - self.pad_left + self.span
        length = max(needed, self.keep, 1)
        prefix = view[..., : min(end, length)]
        if prefix.size(-1) < length:
            # only windows of pure padding read past the input: whatever stands there is unused
            prefix = F.pad(prefix, (0, length - prefix.size(-1)))
        edge: Tensor = self.module(prefix)
        return edge[..., self.next_out : last]

    def _finish(self, view: Tensor, end: int) -> Optional[Tensor]:
        if not self.tail:
            reach = end - self.span
            ready = reach // self.stride + 1 if reach >= 0 else 0
            if ready <= self.next_out:
                return None
            offset = self.next_out * self.stride - self.base
            length = (ready - self.next_out - 1) * self.stride + self.span
            return self.valid_windows(view.narrow(-1, offset, length))
        remaining = self.output_length(end) - self.next_out
        if remaining <= 0:
            return None
        # the held tail starts on a stride boundary, so its windows are the signal's windows
        first = self.next_out - self.base // self.stride
        tail: Tensor = self.module(view)
        return tail[..., first : first + remaining]

    def reset_state(self) -> None:
        self.buffer.clear()
        self.base = 0
        self.next_out = 0
        self.received = 0

    def timing(self) -> Timing:
        return Timing.window(self.span, self.stride, -self.pad_left)

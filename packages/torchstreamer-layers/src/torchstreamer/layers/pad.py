"""The stream of ``nn.ConstantPad1d``, ``nn.ZeroPad1d``, ``nn.ReflectionPad1d`` and
``nn.ReplicationPad1d``."""

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import Edges, NotStreamableError, StreamError, TimeBuffer, Timing

from ._window import WindowStream

__all__ = ["Pad1dStream"]

PadModule = Union[nn.ConstantPad1d, nn.ReflectionPad1d, nn.ReplicationPad1d, nn.CircularPad1d]


class Pad1dStream(WindowStream):
    """Streams a 1D padding layer exactly: the padding at the start, the block, the padding at
    the end.

    Constant (and zero) padding is emitted with the first call, before any sample arrives;
    replicate padding once the first sample has arrived, reflect padding of ``p`` samples
    once ``p + 1`` have. The right padding is emitted on ``final=True``. Negative padding
    crops, as in the modules: a left crop drops the first samples, a right crop holds back
    as many samples until the stream ends.

    The steady state is nearly free: a pad's windows are single samples, so the stream
    returns the block it was given, without a copy (as ``nn.Identity`` does), and copies
    only the samples the right edge will need (one for replicate, ``p + 1`` for reflect).
    Its outputs never share memory with the stream's state, but they may be views of the
    caller's blocks, which the stream never writes to. (A right crop delays the signal, so
    there the outputs are copies.)

    Timing: output ``j`` is input ``j - left``, so ``lookahead`` is ``-left`` (outputs run
    ahead of their inputs by the left padding). An output exists only once the samples a
    right crop removes have followed it, so such a crop counts in ``receptive_field`` and
    ``lookahead``.

    Args:
        module: the padding layer; its ``padding`` is an int or a ``(left, right)`` pair,
            negative values crop.
        edges: ``"pad"`` reproduces ``module(x)``; ``"valid"`` ignores the padding: the
            stream is then the identity, or the crop that negative padding asks for.
            (Default: ``"pad"``)

    Raises:
        StreamError: if ``module`` is not one of the padding layers above.
        NotStreamableError: for ``nn.CircularPad1d`` with ``edges="pad"``: its left edge is
            the end of the signal.

    Shape:
        ``[B, C, T]`` or ``[C, T]`` in, ``[B, C, T + left + right]`` or
        ``[C, T + left + right]`` out.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> pad = torch.nn.ReflectionPad1d((2, 1))
        >>> stream = pts.Pad1dStream(pad)
        >>> x = torch.arange(6.0).view(1, 6)
        >>> stream(x[:, :2]) is None  # reflecting 2 samples needs the first 3
        True
        >>> stream(x[:, 2:4])
        tensor([[2., 1., 0., 1., 2., 3.]])
        >>> stream(x[:, 4:], final=True)
        tensor([[4., 5., 4.]])
        >>> stream.receptive_field
        1
    """

    def __init__(self, module: PadModule, *, edges: Edges = "pad") -> None:
        if isinstance(module, nn.ConstantPad1d):
            mode, value = "constant", float(module.value)
        elif isinstance(module, nn.ReflectionPad1d):
            mode, value = "reflect", 0.0
        elif isinstance(module, nn.ReplicationPad1d):
            mode, value = "replicate", 0.0
        elif isinstance(module, nn.CircularPad1d):
            mode, value = "circular", 0.0
        else:
            raise StreamError(
                "Pad1dStream streams nn.ConstantPad1d, nn.ZeroPad1d, nn.ReflectionPad1d and "
                f"nn.ReplicationPad1d, got {type(module).__name__}"
            )
        left, right = (int(p) for p in module.padding)
        if mode == "circular" and edges == "pad" and (left > 0 or right > 0):
            raise NotStreamableError(
                f"Pad1dStream: {module!r} pads circularly: its first outputs are the end of "
                "the signal, which has not arrived yet, so it cannot be streamed. Use "
                "nn.ReflectionPad1d or nn.ReplicationPad1d, or edges='valid' to ignore the "
                "padding."
            )
        super().__init__(module, edges=edges)
        # the module pads, then crops what negative padding asks for
        self.pad_left = max(left, 0) if edges == "pad" else 0
        self.pad_right = max(right, 0) if edges == "pad" else 0
        padded = self.pad_left > 0 or self.pad_right > 0
        self.mode = mode if padded else "constant"
        self.value = value
        self.crop_left = max(-left, 0)
        self.crop_right = max(-right, 0)
        # samples before the left padding is known, and held for the right padding
        self.known_after = _support(mode, self.pad_left)
        self.keep = _support(mode, self.pad_right)
        # output j is input j + crop_left - pad_left; it exists once crop_right more arrived
        self.span = 1 + self.crop_right
        self.started = False
        self.to_crop = self.crop_left
        self.delay = TimeBuffer()
        self.module_hint = repr(module)

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if self.started and not final:
            # the steady state: the block itself, and the last samples for the right edge
            if self.keep > 0 and x.size(-1) > 0:
                self._hold_tail(x)
            y = x
        else:
            y = self._edge(x, final)
        if self.to_crop > 0 or self.crop_right > 0:
            y = self._crop(y, final)
        if final:
            self.reset_state()
        return y if y.size(-1) > 0 else None

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        if self.started:
            # at most one output per input from here on
            return outputs
        # nothing before the left padding is known; then at most the padding and the samples
        held = self.buffer.held
        return max(self.known_after - held, outputs - self.pad_left - held, 1)

    def _edge(self, x: Tensor, final: bool) -> Tensor:
        """The samples of a call that reaches the padding at either end."""
        view = self.buffer.extend(x)
        if view.size(-1) == 0 and self.mode != "constant":
            # nothing to reflect or replicate yet (and a whole empty signal is the module's error)
            return x
        if not self.started:
            if view.size(-1) < self.known_after and not final:
                self.buffer.advance(view, 0)
                return x[..., :0]
            # nothing was emitted yet: everything so far, after the left padding
            y = F.pad(view, [self.pad_left, self.pad_right if final else 0], self.mode, self.value)
            self.started = True
        else:
            # the held tail followed by the block and the right padding; the tail was emitted
            y = F.pad(view, [0, self.pad_right], self.mode, self.value)
            y = y[..., view.size(-1) - x.size(-1) :]
        self.buffer.advance(view, max(view.size(-1) - self.keep, 0))
        return y

    def _hold_tail(self, x: Tensor) -> None:
        """Keeps the last ``keep`` samples seen, copying no more than that."""
        if x.size(-1) >= self.keep:
            self.buffer.clear()
        view = self.buffer.extend(x)
        self.buffer.advance(view, max(view.size(-1) - self.keep, 0))

    def _crop(self, y: Tensor, final: bool) -> Tensor:
        """Drops the first ``crop_left`` and the last ``crop_right`` samples of the output."""
        if self.to_crop > 0:
            dropped = min(self.to_crop, y.size(-1))
            y = y[..., dropped:]
            self.to_crop -= dropped
        if self.crop_right == 0:
            return y
        view = self.delay.extend(y)
        ready = max(view.size(-1) - self.crop_right, 0)
        # a copy: the view may be the delay's own storage
        out = view[..., :ready].clone()
        self.delay.advance(view, ready)
        return out

    def reset_state(self) -> None:
        self.buffer.clear()
        self.delay.clear()
        self.started = False
        self.to_crop = self.crop_left

    def timing(self) -> Timing:
        return Timing.window(self.span, 1, self.crop_left - self.pad_left)

    def output_length(self, length: int) -> int:
        return max(length + self.pad_left + self.pad_right - self.crop_left - self.crop_right, 0)

    def __repr__(self) -> str:
        extra = f", edges={self.edges!r}" if self.edges != "pad" else ""
        return f"Pad1dStream({self.module_hint}{extra})"


def _support(mode: str, padding: int) -> int:
    """Input samples that ``padding`` samples of padding in ``mode`` are computed from."""
    if padding == 0 or mode == "constant":
        return 0
    if mode == "replicate":
        return 1
    return padding + 1

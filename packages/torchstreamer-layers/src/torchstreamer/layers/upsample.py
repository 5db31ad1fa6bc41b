"""The stream of ``nn.Upsample`` over time."""

from typing import Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Edges,
    NotStreamableError,
    TimeBuffer,
    Timing,
    check_edges,
)

__all__ = ["Upsample1dStream"]

_MODES = ("nearest", "nearest-exact", "linear")


class Upsample1dStream(BaseStream):
    """Streams an ``nn.Upsample`` by an integer factor exactly, ends included.

    Modes ``"nearest"`` and ``"nearest-exact"`` repeat each input ``factor`` times (for an
    integer factor both pick input ``i // factor`` for output ``i``), so every output leaves
    with its input. Mode ``"linear"`` (``align_corners=False``) interpolates between the two
    inputs around each output and holds one input back: an output is emitted once every input
    with a nonzero weight has arrived. Its first outputs repeat the first input, and its last
    ones, which repeat the last input, come with ``final=True``.

    The linear weights follow PyTorch's own arithmetic, output index by output index: single
    precision for float32, float16 and bfloat16 (rounded step by step on the CPU, with the
    fused multiply-add of the CUDA kernel on CUDA), double for float64. So they equal
    ``module(x)`` on long signals too, where that arithmetic drifts from the exact weights (by
    more than float32 rounding after a few hundred samples with a factor of 3). It also makes
    the weight of the next input, zero in exact arithmetic for the middle output of an odd
    factor, a rounding error: such outputs wait for that input too, and :meth:`timing` counts
    it. For nearest modes the stream picks input ``i // factor``, which is what PyTorch's
    kernels compute until their single-precision index arithmetic rounds differently, past
    5 million output samples for some factors.

    ``edges`` is accepted for uniformity and changes nothing: upsampling has no padding.

    Args:
        module: the upsampling layer, with ``scale_factor`` an integer (``2``, ``2.0`` or
            ``(2,)``).
        edges: ``"pad"`` or ``"valid"``; both give ``module(x)``. (Default: ``"pad"``)

    Raises:
        NotStreamableError: for ``size=`` (the factor would depend on the signal's length),
            a non-integer factor, ``align_corners=True`` (which scales by
            ``(T_out - 1) / (T - 1)``), and modes other than nearest, nearest-exact and linear.

    Shape:
        ``[B, C, T]`` or ``[C, T]`` in (``nn.Upsample`` itself takes the first only),
        ``[B, C, factor * T]`` or ``[C, factor * T]`` out.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> up = torch.nn.Upsample(scale_factor=3, mode="linear")
        >>> stream = pts.Upsample1dStream(up)
        >>> x = torch.randn(1, 2, 100)
        >>> blocks = [stream(x[..., i : i + 16], final=i + 16 >= 100) for i in range(0, 100, 16)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), up(x))
        >>> stream.rate, stream.receptive_field, stream.lookahead
        (Fraction(3, 1), 2, Fraction(2, 3))
    """

    def __init__(self, module: nn.Upsample, *, edges: Edges = "pad") -> None:
        if not isinstance(module, nn.Upsample):
            raise NotStreamableError(
                f"Upsample1dStream: expected an nn.Upsample, got {type(module).__name__}"
            )
        check_edges(edges)
        self.factor = _integer_factor(module)
        mode = str(module.mode)
        if mode not in _MODES:
            raise NotStreamableError(
                f"Upsample1dStream: {module!r} uses mode {mode!r}; only 'nearest', "
                "'nearest-exact' and 'linear' can be streamed over time ('area' averages "
                "windows whose bounds depend on the length of the whole signal; 'bilinear', "
                "'bicubic' and 'trilinear' resize 2D and 3D inputs)"
            )
        if mode == "linear" and module.align_corners:
            raise NotStreamableError(
                f"Upsample1dStream: {module!r} uses align_corners=True, which scales by "
                "(T_out - 1) / (T - 1): every output depends on the length of the whole "
                "signal. Use align_corners=False to stream it."
            )
        super().__init__()
        self.module = module
        self.edges = edges
        self.linear = mode == "linear"
        # 1 / factor rounded to single precision, as the kernel's float32 arithmetic has it
        self.scale_float = float(torch.tensor(1.0 / self.factor, dtype=torch.float32))
        self.module_hint = repr(module)
        self.buffer = TimeBuffer()
        self.received = 0
        self.emitted = 0

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if not self.linear or self.factor == 1:
            if final:
                self.reset_state()
            if x.size(-1) == 0:
                return None
            return x.repeat_interleave(self.factor, dim=-1)
        return self._linear(x, final)

    def _linear(self, x: Tensor, final: bool) -> Optional[Tensor]:
        n = x.size(-1)
        if n == 0 and not final:
            return None
        received = self.received + n
        if received == 0:
            self.reset_state()
            return None
        view = self.buffer.extend(x)
        base = received - view.size(-1)
        math = torch.float64 if x.dtype == torch.float64 else torch.float32
        index = torch.arange(self.emitted, received * self.factor, device=x.device)
        source = self._source(index, math).clamp_min(0.0)
        last = received - 1
        if not final:
            # an output waits for the input after floor(source) unless its weight is zero;
            # source grows with the index, so the ready outputs are a prefix
            ready = int((source <= last).sum())
            source = source[:ready]
        if source.size(0) == 0:
            self._hold(view, received)
            return None
        left = source.floor().clamp_max(last)
        weight = (source - left).clamp(0.0, 1.0)
        first = left.long()
        second = first + (first < last).long()
        a = view.index_select(-1, first - base)
        b = view.index_select(-1, second - base)
        if a.dtype != math:
            a, b = a.to(math), b.to(math)
        y = a * (1.0 - weight) + b * weight
        self.emitted += source.size(0)
        if final:
            self.reset_state()
        else:
            self._hold(view, received)
        return y.to(x.dtype)

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        factor = self.factor
        if not self.linear or factor == 1:
            return -(-outputs // factor)
        # output j interpolates at (j + 1/2) / factor - 1/2 and waits for the input at its
        # floor: at least j // factor + 1 inputs
        return max(-(-(self.emitted + outputs) // factor) - self.received, 1)

    def _source(self, index: Tensor, math: torch.dtype) -> Tensor:
        """Where outputs ``index`` sample the input, as the kernel computes it.

        ``(index + 1/2) / factor - 1/2`` in double for float64 and in single precision
        otherwise, rounded step by step as on the CPU; the CUDA kernel fuses the product and
        the difference into one rounding, which double precision reproduces exactly here (a
        product of two floats is exact in double).
        """
        if math == torch.float32 and index.is_cuda:
            shifted = (index.to(math) + 0.5).double()
            return (shifted * self.scale_float - 0.5).to(math)
        return (index.to(math) + 0.5) * (1.0 / self.factor) - 0.5

    def _hold(self, view: Tensor, received: int) -> None:
        # every output still to come reads the last input or later ones
        self.received = received
        self.buffer.advance(view, view.size(-1) - 1)

    def reset_state(self) -> None:
        self.buffer.clear()
        self.received = 0
        self.emitted = 0

    @torch.jit.unused
    def timing(self) -> Timing:
        factor = self.factor
        if not self.linear or factor == 1:
            return Timing.upsampling(factor, lambda i: i // factor, lambda i: i // factor)
        # output i interpolates at (i + 1/2) / factor - 1/2 between the input at its floor and
        # the next one; where that position is a whole number (odd factors) the next input's
        # weight is zero in exact arithmetic but a rounding error in PyTorch's, so it counts
        return Timing.upsampling(
            factor,
            lambda i: (2 * i + 1 - factor) // (2 * factor),
            lambda i: (2 * i + 1 - factor) // (2 * factor) + 1,
        )

    def __repr__(self) -> str:
        extra = f", edges={self.edges!r}" if self.edges != "pad" else ""
        return f"Upsample1dStream(scale_factor={self.factor}, mode={self.module.mode!r}{extra})"


def _integer_factor(module: nn.Upsample) -> int:
    """The module's scale factor as an int, or a NotStreamableError saying why not."""
    if module.size is not None:
        raise NotStreamableError(
            f"Upsample1dStream: {module!r} sets size=, so its factor depends on the length "
            "of the whole signal; use an integer scale_factor to stream it"
        )
    factor = module.scale_factor
    if isinstance(factor, (tuple, list)):
        if len(factor) != 1:
            raise NotStreamableError(
                f"Upsample1dStream: {module!r} has {len(factor)} scale factors; a stream "
                "over time takes one"
            )
        factor = factor[0]
    if factor is None or float(factor) != int(factor) or int(factor) < 1:
        raise NotStreamableError(
            f"Upsample1dStream: {module!r} has scale_factor={factor}; only an integer factor "
            "can be streamed: with a fractional one the number of outputs, floor(T * factor), "
            "and with recompute_scale_factor=True the position of every output, depend on "
            "the length of the whole signal"
        )
    return int(factor)

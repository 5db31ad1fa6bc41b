"""Residual connections: the ``Residual1d`` module and its stream."""

from typing import Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import Edges, StreamError, TimeBuffer, create_stream

from ._paths import Paths1dStream, check_forward, crop_to

__all__ = ["Residual1d", "Residual1dStream"]


class Residual1d(nn.Module):
    """``net(x) + x``, with ``x`` cropped to the length of ``net(x)`` when ``net`` shortens it.

    Unpadded convolutions shorten a signal; the crop is symmetric, the left side losing the
    floor of half: for a shortening by ``p`` samples the output is
    ``net(x) + x[..., p // 2 : T - (p - p // 2)]``. So a residual block can be built from
    unpadded layers and still stream exactly (see :class:`Residual1dStream`).

    Args:
        net: the inner network; several modules are chained in an ``nn.Sequential``.
        *more: further modules of the inner network.

    Raises:
        ValueError: ``invalid_residual_stride: ...`` if the inner network changes the sample
            rate (strides, pooling, upsampling), which a sample-by-sample sum cannot follow.

    Shape:
        ``[B, C, T]`` or ``[C, T]`` in, ``[B, C, T - p]`` or ``[C, T - p]`` out, where ``p``
        is the inner network's shortening.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> block = pts.Residual1d(torch.nn.GELU(), torch.nn.Conv1d(4, 4, 3))
        >>> block(torch.randn(4, 10)).shape
        torch.Size([4, 8])
    """

    def __init__(self, net: nn.Module, *more: nn.Module) -> None:
        super().__init__()
        inner = nn.Sequential(net, *more) if more else net
        reason = _rate_change(inner)
        if reason is not None:
            raise ValueError(
                f"invalid_residual_stride: {reason}; a residual connection adds input and "
                "output sample by sample, so the inner network must keep the sample rate"
            )
        self.net = inner

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.net(x)
        if y.shape[-1] > x.shape[-1]:
            raise ValueError(
                f"Residual1d: the inner network returned {y.shape[-1]} samples for "
                f"{x.shape[-1]}; it may shorten the signal, never lengthen it"
            )
        return y + crop_to(x, y.shape[-1])


class Residual1dStream(Paths1dStream):
    """Streams a residual connection exactly: the inner network's stream plus its input.

    The input is held back until the inner stream has the matching output, then added; where
    the inner network shortens the signal, the input is cropped as :class:`Residual1d` crops it.
    The alignment comes from the inner stream's own behaviour (measured when the stream is
    built), so any inner network streams: padded or unpadded convolutions, pooling, nested
    residual blocks, your own registered handlers. The caller's tensors are never written to.

    Args:
        module: a :class:`Residual1d`, or any module to put a residual connection around (as
            torch-streamer 0.0.2 accepted).
        edges: ``"pad"`` reproduces ``module(x)`` with the inner layers' padding; ``"valid"``
            ignores padding, as torch-streamer 0.0.2 did. (Default: ``"pad"``)

    Raises:
        NotStreamableError: ``invalid_residual_stride: ...`` if the inner network changes the
            sample rate; if it lengthens the signal; if a layer inside cannot be streamed
            (the message starts with its path, e.g. ``net.1 (GroupNorm): ...``).

    Shape:
        ``[B, C, T]`` or ``[C, T]`` in, the same out (shortened as the inner network shortens).

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> block = pts.Residual1d(torch.nn.Conv1d(2, 2, 5))  # unpadded: crops x by 2 + 2
        >>> stream = pts.Residual1dStream(block)
        >>> x = torch.randn(2, 40)
        >>> blocks = [stream(x[:, i : i + 7], final=i + 7 >= 40) for i in range(0, 40, 7)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), block(x))
    """

    def __init__(self, module: nn.Module, *, edges: Edges = "pad") -> None:
        if isinstance(module, Residual1d):
            check_forward(module, Residual1d, "Residual1dStream")
            branches = [("net", module.net)]
        else:
            branches = [("", module)]
        super().__init__(branches, edges=edges, identity=True, combine="sum")

    def _step(self, x: Tensor, final: bool) -> Optional[Tensor]:
        if not torch.jit.is_scripting():
            return self._step_eager(x, final)
        return self._step_aligned(x, final)

    @torch.jit.unused
    def _step_eager(self, x: Tensor, final: bool) -> Optional[Tensor]:
        """:meth:`_step_aligned`, reaching the inner stream and the queues without indexing."""
        if self.pending:
            self._probe_now(x)
        parts = self.__dict__.get("_parts")
        if parts is None:
            # the inner stream and the two queues, reached without nn.ModuleList indexing
            parts = (self.paths[0], self.aligner.queues[0], self.aligner.queues[1])
            self.__dict__["_parts"] = parts
        inner, waiting, ahead = parts
        return self._add(x, inner.step(x, final), final, waiting, ahead)

    def _step_aligned(self, x: Tensor, final: bool) -> Optional[Tensor]:
        if self.pending:
            self._probe_now(x)
        queues = self.aligner.queues
        return self._add(x, self.paths[0].step(x, final), final, queues[0], queues[1])

    def _add(
        self,
        x: Tensor,
        y: Optional[Tensor],
        final: bool,
        waiting: TimeBuffer,
        ahead: TimeBuffer,
    ) -> Optional[Tensor]:
        """Adds the inner output ``y`` to the input it lines up with, with a steady shortcut.

        In the steady state of a residual block the inner network lags its input, so the input
        waits in its queue (``waiting``) and the inner output is never held (``ahead``): each
        inner output is added to the inputs it lines up with at once. The general alignment
        (:class:`PathAligner`) gives the same result with more bookkeeping per block.
        """
        if (
            y is not None
            and not final
            and ahead.held == 0
            and ahead.skip == 0
            and waiting.skip == 0
        ):
            view = waiting.extend(x.detach() if x.requires_grad else x)
            n = y.size(-1)
            if view.size(-1) >= n:
                # the inner output first, as Residual1d adds
                added = y + waiting.narrow(view, 0, n)
                waiting.advance(view, n)
                return added
            # the inner network is ahead: extend() alone changed nothing
        return self._align_and_add(x, y, final)

    def _align_and_add(self, x: Tensor, y: Optional[Tensor], final: bool) -> Optional[Tensor]:
        pieces = self.aligner.align([x, y], final)
        if final:
            self.aligner.restart()
        if pieces is None or pieces[0].size(-1) == 0:
            return None
        return self._combine(pieces)

    def _combine(self, pieces: list[Tensor]) -> Tensor:
        # the inner output first, as Residual1d adds
        return pieces[1] + pieces[0]


def _rate_change(net: nn.Module) -> Optional[str]:
    """Why ``net`` changes the sample rate, or ``None`` if it keeps it.

    The stream of ``net`` knows its rate whatever the layers; a network that cannot be streamed
    is checked for the layers that change the rate.
    """
    try:
        rate = create_stream(net).rate
    except (StreamError, AttributeError):
        return _rate_changing_layer(net)
    if rate != 1:
        return f"the inner network changes the sample rate by {rate}"
    return None


def _rate_changing_layer(net: nn.Module) -> Optional[str]:
    for name, module in net.named_modules():
        stride = getattr(module, "stride", 1)
        scale = getattr(module, "scale_factor", None) if isinstance(module, nn.Upsample) else None
        if isinstance(module, nn.Upsample) and (module.size is not None or scale not in (None, 1)):
            return f"{name or 'the inner network'} ({module!r}) resamples"
        strides = stride if isinstance(stride, tuple) else (stride,)
        if isinstance(stride, (int, tuple)) and any(s != 1 for s in strides):
            return f"{name or 'the inner network'} ({module!r}) has stride {stride}"
    return None

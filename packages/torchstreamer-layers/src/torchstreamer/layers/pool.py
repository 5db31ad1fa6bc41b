"""The stream of ``nn.AvgPool1d``, ``nn.MaxPool1d`` and ``nn.LPPool1d``."""

from typing import Final, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import Edges, NotStreamableError, StreamError

from ._window import WindowStream

__all__ = ["Pool1dStream"]

PoolModule = Union[nn.AvgPool1d, nn.MaxPool1d, nn.LPPool1d]


class Pool1dStream(WindowStream):
    """Streams an ``nn.AvgPool1d``, ``nn.MaxPool1d`` or ``nn.LPPool1d`` exactly, edges included.

    Every option counts: ``padding`` (applied at the start of the stream and, on
    ``final=True``, at its end), ``ceil_mode`` (the last, partial window is emitted on
    ``final=True``), ``count_include_pad``, ``dilation`` and strides larger than the kernel.
    Each output is emitted as soon as its window has arrived; ``stride=None`` means the kernel
    size, as in the modules.

    Adaptive pooling (``nn.AdaptiveAvgPool1d``...) depends on the length of the whole signal
    and cannot be streamed; :func:`torchstreamer.create_stream` refuses it.

    Args:
        module: the pooling layer.
        edges: ``"pad"`` reproduces ``module(x)`` with its padding and ``ceil_mode``;
            ``"valid"`` ignores both and emits only full windows inside the signal, as
            torch-streamer 0.0.2 did. (Default: ``"pad"``)

    Raises:
        StreamError: ``invalid_pool_module`` if ``module`` is not one of the three pools (a
            ``ValueError``, as in torch-streamer 0.0.2).
        NotStreamableError: for ``nn.MaxPool1d(return_indices=True)``, whose second output
            is not a signal.

    Shape:
        ``[B, C, T]`` or ``[C, T]`` in, ``[B, C, T_out]`` or ``[C, T_out]`` out.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> pool = torch.nn.AvgPool1d(4, stride=2, padding=1, ceil_mode=True)
        >>> stream = pts.Pool1dStream(pool)
        >>> stream
        AvgPool1dStream(kernel_size=4, stride=2, padding=1, ceil_mode=True)
        >>> x = torch.randn(3, 51)
        >>> blocks = [stream(x[:, i : i + 10], final=i + 10 >= 51) for i in range(0, 51, 10)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), pool(x))
    """

    # from this many outputs on, average pooling on the CPU sums shifted views instead
    # (_average_by_shifts); below it, the kernel's fixed cost is the smaller one
    MANY_OUTPUTS: Final[int] = 8

    def __init__(self, module: PoolModule, *, edges: Edges = "pad") -> None:
        if isinstance(module, nn.AvgPool1d):
            kind = "Avg"
        elif isinstance(module, nn.MaxPool1d):
            kind = "Max"
        elif isinstance(module, nn.LPPool1d):
            kind = "LP"
        else:
            raise StreamError(
                "invalid_pool_module: Pool1dStream streams nn.AvgPool1d, nn.MaxPool1d and "
                f"nn.LPPool1d, got {type(module).__name__}"
            )
        if isinstance(module, nn.MaxPool1d) and module.return_indices:
            raise NotStreamableError(
                f"MaxPool1dStream: {module!r} returns indices, which are not a signal; use "
                "return_indices=False"
            )
        super().__init__(module, edges=edges)
        self.kind = kind
        self.kernel_size = _single(module.kernel_size)
        stride = module.stride
        self.stride = self.kernel_size if stride is None else _single(stride)
        self.padding = 0 if isinstance(module, nn.LPPool1d) else _single(module.padding)
        self.dilation = _single(module.dilation) if isinstance(module, nn.MaxPool1d) else 1
        self.ceil_mode = bool(module.ceil_mode)
        self.norm_type = float(module.norm_type) if isinstance(module, nn.LPPool1d) else 1.0
        # the padding is a constant (zeros, -inf for max pooling): the left edge needs no sample
        self.configure(
            span=self.dilation * (self.kernel_size - 1) + 1,
            stride=self.stride,
            pad_left=self.padding,
            pad_right=self.padding,
            known_after=0,
            ceil_mode=self.ceil_mode,
        )
        self.stream_name = f"{kind}Pool1dStream"
        self.module_hint = repr(module)

    def valid_windows(self, x: Tensor) -> Tensor:
        if self.kind == "Avg":
            outputs = (x.size(-1) - self.span) // self.stride + 1
            exact_sums = x.dtype == torch.float32 or x.dtype == torch.float64
            if outputs >= self.MANY_OUTPUTS and x.is_cpu and exact_sums:
                return self._average_by_shifts(x, outputs)
            return F.avg_pool1d(x, self.kernel_size, self.stride)
        if self.kind == "Max":
            return F.max_pool1d(x, self.kernel_size, self.stride, 0, self.dilation)
        return F.lp_pool1d(x, self.norm_type, self.kernel_size, self.stride)

    def _average_by_shifts(self, x: Tensor, outputs: int) -> Tensor:
        """Average pooling as a sum of ``kernel_size`` shifted, strided views, then a division.

        The same additions in the same order as the CPU kernel (left to right, then divided
        by the kernel size), so the same samples, at several times its speed: ``avg_pool1d``
        runs through a 2D kernel that is slow on long 1D signals.
        """
        reach = (outputs - 1) * self.stride + 1
        total = x[..., 0 : reach : self.stride].clone()
        for tap in range(1, self.kernel_size):
            total += x[..., tap : tap + reach : self.stride]
        return total.div_(self.kernel_size)

    def output_length(self, length: int) -> int:
        # the rule of torch's pooling kernels, ceil_mode included
        ceil = self.ceil_mode and self.edges == "pad"
        room = length + 2 * self.pad_left - self.span + (self.stride - 1 if ceil else 0)
        count = room // self.stride + 1
        if ceil and (count - 1) * self.stride >= length + self.pad_left:
            # a last window may not start in the right padding
            count -= 1
        return max(count, 0)

    def __repr__(self) -> str:
        extra = "".join(
            (
                f", padding={self.padding}" if self.padding else "",
                f", dilation={self.dilation}" if self.dilation != 1 else "",
                ", ceil_mode=True" if self.ceil_mode else "",
                f", edges={self.edges!r}" if self.edges != "pad" else "",
            )
        )
        return f"{self.stream_name}(kernel_size={self.kernel_size}, stride={self.stride}{extra})"


def _single(value: Union[int, tuple[int, ...]]) -> int:
    """The one int of a 1D option that torch stores as an int or a 1-tuple."""
    return value if isinstance(value, int) else int(value[0])

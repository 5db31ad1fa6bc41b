"""The stream of ``nn.Conv1d``."""

from typing import TYPE_CHECKING, Final, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import Edges, NotStreamableError

from ._weights import LayerWeight
from ._window import WindowStream

__all__ = ["Conv1dStream"]


class Conv1dStream(LayerWeight, WindowStream):
    """Streams an ``nn.Conv1d`` exactly, padding included.

    Any kernel size, stride (larger than the kernel too), dilation, groups and bias; padding as
    an int, ``"same"`` or ``"valid"``, with ``padding_mode`` ``"zeros"``, ``"reflect"`` or
    ``"replicate"``. Weight-normed and otherwise parametrized convolutions work; their weight
    is recomputed only when the underlying parameters change.

    Each output is emitted as soon as the input determines it: a centred (``"same"``)
    convolution with kernel 5 lags its input by 2 samples, a causal one (all padding on the
    left, e.g. through ``nn.ConstantPad1d`` before it) by none.

    Args:
        module: the convolution. Its parameters are shared, not copied.
        edges: ``"pad"`` reproduces ``module(x)`` with its padding; ``"valid"`` ignores the
            padding, as torch-streamer 0.0.2 did. (Default: ``"pad"``)

    Raises:
        NotStreamableError: for ``padding_mode="circular"`` with padding, whose left edge needs
            the end of the signal (unless ``edges="valid"``).

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in, ``[B, C_out, T_out]`` or ``[C_out, T_out]`` out.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> conv = torch.nn.Conv1d(2, 4, kernel_size=5, padding="same")
        >>> stream = pts.Conv1dStream(conv)
        >>> x = torch.randn(2, 100)
        >>> blocks = [stream(x[:, i : i + 16], final=i + 16 >= 100) for i in range(0, 100, 16)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), conv(x))
        >>> stream.lookahead
        Fraction(2, 1)
    """

    # below this many outputs, a call on the CPU is faster as a matrix product (_matrix_product)
    FEW_OUTPUTS: Final[int] = 12

    if TYPE_CHECKING:  # for type checkers only: TorchScript rejects module annotations
        module: nn.Conv1d

    def __init__(self, module: nn.Conv1d, *, edges: Edges = "pad") -> None:
        if not isinstance(module, nn.Conv1d):
            raise NotStreamableError(
                f"Conv1dStream: expected an nn.Conv1d, got {type(module).__name__}"
            )
        padded = module.padding == "same" or (
            not isinstance(module.padding, str) and module.padding[0] > 0
        )
        if module.padding_mode == "circular" and edges == "pad" and padded:
            raise NotStreamableError(
                f"Conv1dStream: {module!r} uses circular padding, whose first outputs depend on "
                "the end of the signal; it cannot be streamed. Use padding_mode 'zeros', "
                "'reflect' or 'replicate', or edges='valid' to ignore the padding."
            )
        super().__init__(module, edges=edges)
        kernel, stride, dilation = module.kernel_size[0], module.stride[0], module.dilation[0]
        span = dilation * (kernel - 1) + 1
        if isinstance(module.padding, str):
            total = span - 1 if module.padding == "same" else 0
            pad_left, pad_right = total // 2, total - total // 2
        else:
            pad_left = pad_right = module.padding[0]
        known_after = {
            "reflect": max(pad_left, pad_right) + 1,
            "replicate": 1 if pad_left > 0 else 0,
        }.get(module.padding_mode, 0)
        self.configure(
            span=span,
            stride=stride,
            pad_left=pad_left,
            pad_right=pad_right,
            known_after=known_after,
        )
        self.in_channels = module.in_channels
        self.module_hint = repr(module)
        self.dilation = dilation
        self.groups = module.groups
        self.track_weight(module)

    def valid_windows(self, x: Tensor) -> Tensor:
        bias = self.current_bias()
        outputs = (x.size(-1) - self.span) // self.stride + 1
        if self.groups == 1 and (outputs == 1 or (outputs < self.FEW_OUTPUTS and x.is_cpu)):
            return self._matrix_product(x, bias, outputs)
        weight = self.current_weight()
        if self.dilation > 1 and bias is not None:
            # outside the convolution: dilated kernels with a bias take a slow path
            y = F.conv1d(x, weight, None, self.stride, 0, self.dilation, self.groups)
            y += bias.view(-1, 1)
            return y
        return F.conv1d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def _matrix_product(self, x: Tensor, bias: Optional[Tensor], outputs: int) -> Tensor:
        """A few outputs as one matrix product over the windows' taps.

        On the CPU, ``conv1d`` spends 40 to 250 µs on any call with 2 to 11 outputs (its
        matrix product is laid out the slow way round for so few columns), 3 to 7 times
        what this takes; with one output it is the conv kernels' setup that costs.
        """
        batch = x.size(0)
        matrix = self.current_matrix()  # [C_out, C_in * kernel], taps innermost
        if outputs == 1:
            taps = x.narrow(-1, 0, self.span) if x.size(-1) != self.span else x
            if self.dilation > 1:
                taps = taps[..., :: self.dilation]
            if batch == 1:
                flat = taps.reshape(-1)
                y = torch.mv(matrix, flat) if bias is None else torch.addmv(bias, matrix, flat)
                return y.view(1, -1, 1)
            return F.linear(taps.reshape(batch, -1), matrix, bias).unsqueeze(-1)
        windows = x.unfold(-1, self.span, self.stride)  # [B, C_in, outputs, span]
        if self.dilation > 1:
            windows = windows[..., :: self.dilation]
        columns = windows.transpose(1, 2).reshape(batch, outputs, -1)
        return F.linear(columns, matrix, bias).transpose(1, 2)

    def output_length(self, length: int) -> int:
        padded = length + self.pad_left + self.pad_right
        return (padded - self.span) // self.stride + 1 if padded >= self.span else 0

    def __repr__(self) -> str:
        m = self.module
        padding = m.padding if isinstance(m.padding, str) else m.padding[0]
        extra = f", edges={self.edges!r}" if self.edges != "pad" else ""
        return (
            f"Conv1dStream({m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size[0]}, "
            f"stride={self.stride}, padding={padding}{extra})"
        )

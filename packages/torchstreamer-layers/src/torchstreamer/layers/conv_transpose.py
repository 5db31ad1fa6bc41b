"""The stream of ``nn.ConvTranspose1d``."""

from collections.abc import Callable
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Edges,
    NotStreamableError,
    Timing,
    check_edges,
    state_tensor,
)

from ._weights import LayerWeight

__all__ = ["ConvTranspose1dStream"]

# Below this many inputs per block, a transposed convolution whose weight has at least _LARGE
# elements is faster as a matrix product and an overlap-add (measured on the CPU, one thread:
# equal at 64 inputs for 128 channels and a kernel of 4, 3 to 20 times faster at 2)
_FEW = 64
_LARGE = 65536


class ConvTranspose1dStream(LayerWeight, BaseStream):
    """Streams an ``nn.ConvTranspose1d`` exactly, padding and output padding included.

    Any kernel size, stride (larger than the kernel too), dilation, groups and bias, with
    ``padding`` and ``output_padding``. Weight-normed and otherwise parametrized transposed
    convolutions work; their weight is recomputed only when the underlying parameters change.

    Input ``j`` adds ``kernel_size`` taps into outputs ``j * stride - padding`` to that plus
    ``dilation * (kernel_size - 1)``. Each block is transposed-convolved on its own (a single
    input by one matrix product); the part of the result that later inputs still add to is
    held, in a preallocated tensor, and added into the next block's result, and the bias is
    added once, as the outputs leave. An output is emitted as soon as no later input can reach
    it and every signal that starts with the input so far has it: the first ``padding``
    outputs are cropped, the last ``padding`` ones wait for the next input (``final=True``
    crops them), and so do ``output_padding`` outputs where a next input would add to them.
    Outputs that no input reaches (a stride larger than the kernel's span) get the bias alone.

    With ``edges="valid"`` the stream ignores ``padding`` and ``output_padding`` and returns
    the whole transposed convolution, ``(T - 1) * stride + dilation * (kernel_size - 1) + 1``
    samples for ``T`` inputs: the samples torch-streamer 0.0.2's ``ConvTranspose1dStream``
    returned, block for block (it failed on an empty last block, which works here).

    Args:
        module: the transposed convolution. Its parameters are shared, not copied.
        edges: ``"pad"`` reproduces ``module(x)``; ``"valid"`` ignores the padding and the
            output padding, as torch-streamer 0.0.2 did. (Default: ``"pad"``)

    Raises:
        NotStreamableError: for a module that is not an ``nn.ConvTranspose1d``.

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in, ``[B, C_out, T_out]`` or ``[C_out, T_out]`` out,
        ``T_out = (T - 1) * stride - 2 * padding + dilation * (kernel_size - 1) +
        output_padding + 1``.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> up = torch.nn.ConvTranspose1d(2, 4, kernel_size=4, stride=2, padding=1)
        >>> stream = pts.ConvTranspose1dStream(up)
        >>> x = torch.randn(2, 100)
        >>> blocks = [stream(x[:, i : i + 16], final=i + 16 >= 100) for i in range(0, 100, 16)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), up(x))
        >>> stream.rate, stream.receptive_field, stream.lookahead
        (Fraction(2, 1), 2, Fraction(1, 2))
    """

    def __init__(self, module: nn.ConvTranspose1d, *, edges: Edges = "pad") -> None:
        if not isinstance(module, nn.ConvTranspose1d):
            raise NotStreamableError(
                "ConvTranspose1dStream: expected an nn.ConvTranspose1d, got "
                + type(module).__name__
            )
        check_edges(edges)
        super().__init__()
        self.module = module
        self.edges = edges
        self.kernel_size = module.kernel_size[0]
        self.stride = module.stride[0]
        self.dilation = module.dilation[0]
        self.groups = module.groups
        self.span = self.dilation * (self.kernel_size - 1) + 1
        valid = edges == "valid"
        self.padding = 0 if valid else int(module.padding[0])
        self.output_padding = 0 if valid else int(module.output_padding[0])
        self.in_channels = module.in_channels
        self.module_hint = repr(module)
        self.track_weight(module)
        # one input, one matrix product: faster than the convolution kernels on tiny inputs;
        # a few inputs with a large weight: a product and an overlap-add (see _overlap_add)
        self.single_product = self.groups == 1 and self.dilation == 1
        weights = module.in_channels * module.out_channels * self.kernel_size
        large = weights >= _LARGE and self.kernel_size <= 4 * self.stride
        self.product_inputs = _FEW if large else 1
        # each input completes `stride` outputs and the next one starts where they end: the
        # steady state of step() holds `span - stride` sums and nothing else
        self.regular = self.span >= self.stride and (
            self.span + self.output_padding - self.padding >= self.stride
        )
        # sums of the taps (no bias) that inputs so far added to outputs not yet emitted, from
        # the output at full-convolution index `emitted` on; allocated once, reused per block.
        # A plain attribute, not a buffer (read on every block); _apply moves it like a buffer
        self.acc = torch.empty(0)
        self.held = 0
        self.received = 0
        self.emitted = self.padding
        # the shortest signal the module accepts: its output must be at least one sample long
        needed = 2 * self.padding - self.span - self.output_padding + 1
        self.shortest = max(1, 1 - (-needed // self.stride))

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if torch.jit.is_scripting():
            # eager code allocates the sums outside inference mode (state_tensor); scripted
            # code cannot, so sums it made in inference mode are copied once used outside
            acc = self.acc
            if acc.is_inference() and not acc.new_empty(0).is_inference():
                self.acc = acc.clone()
        n = x.size(-1)
        received = self.received
        start = received * self.stride
        if n > 0 and not final and self.regular and self.emitted == start:
            return self._steady(x, n, received, start)
        # an empty block emits only what waited for the signal to go on (see follow)
        if (
            n == 0
            and not final
            and received > 0
            and self._determined(received, self.emitted) <= self.emitted
        ):
            return None
        received += n
        if final and received == 0:
            self.reset_state()
            return None
        emitted = self.emitted
        ready = self._last_output(received) if final else self._determined(received, emitted)
        ready = max(ready, emitted)
        end = start + (n - 1) * self.stride + self.span
        y: Optional[Tensor] = None
        if n > 0:
            y = self._transpose(x, n)
        if y is not None and start <= emitted and ready <= end:
            # the held sums lie inside this block's result
            offset = emitted - start
            held = self.held
            if held > 0:
                y.narrow(-1, offset, held).add_(self.acc.narrow(-1, 0, held))
            out = y.narrow(-1, offset, ready - emitted)
            self._hold(y.narrow(-1, ready - start, end - ready))
        else:
            out = self._gather(x, y, start, end, ready)
        if final:
            self.reset_state()
        else:
            self.received = received
            self.emitted = ready
        return self._with_bias(out)

    def _steady(self, x: Tensor, n: int, received: int, start: int) -> Optional[Tensor]:
        """A block that starts where the emitted outputs end: its ``n * stride`` are ready."""
        stride = self.stride
        held = self.held
        if n == 1 and held > 0 and self.single_product:
            # one input: the held sums enter the matrix product itself. `acc` is exactly
            # [B, C_out, kernel_size] here, zero after the held sums (see _hold)
            acc = self.acc
            product = torch.addmm(acc.view(acc.size(0), -1), x.select(-1, 0), self.current_matrix())
            y = product.view(acc.size(0), acc.size(1), acc.size(2))
            acc.narrow(-1, 0, held).copy_(y.narrow(-1, stride, held).detach())
        else:
            y = self._transpose(x, n)
            if held > 0:
                y.narrow(-1, 0, held).add_(self.acc.narrow(-1, 0, held))
            keep = y.size(-1) - n * stride
            if keep != held:
                self._hold(y.narrow(-1, n * stride, keep))
            elif keep > 0:
                # the storage was checked on an earlier block of this stream
                self.acc.narrow(-1, 0, keep).copy_(y.narrow(-1, n * stride, keep).detach())
        self.received = received + n
        self.emitted = start + n * stride
        return self._with_bias(y.narrow(-1, 0, n * stride))

    def _transpose(self, x: Tensor, n: int) -> Tensor:
        """The whole transposed convolution of ``x``, without bias."""
        if self.single_product:
            if n == 1:
                y = torch.mm(x.select(-1, 0), self.current_matrix())
                return y.view(x.size(0), -1, self.kernel_size)
            if n <= self.product_inputs:
                return self._overlap_add(x, n)
        weight = self.current_weight()
        return F.conv_transpose1d(x, weight, None, self.stride, 0, 0, self.groups, self.dilation)

    def _overlap_add(self, x: Tensor, n: int) -> Tensor:
        """The transposed convolution of a few inputs as one matrix product and an overlap-add.

        On the CPU, ``conv_transpose1d`` spends a time that grows with the weight on every
        call over a few samples (20 times this for a 512-to-256 kernel of 16 on 2 samples).
        """
        batch, stride, kernel = x.size(0), self.stride, self.kernel_size
        taps = torch.matmul(x.transpose(1, 2), self.current_matrix())
        taps = taps.view(batch, n, -1, kernel).permute(0, 2, 1, 3)
        # output j * stride + i is row j, column i: input j's taps from r * stride go to row j + r
        parts = -(-kernel // stride)
        rows = torch.zeros(
            batch, taps.size(1), n + parts - 1, stride, dtype=taps.dtype, device=taps.device
        )
        for part in range(parts):
            width = min(stride, kernel - part * stride)
            rows.narrow(2, part, n).narrow(3, 0, width).add_(taps.narrow(3, part * stride, width))
        return rows.view(batch, taps.size(1), -1).narrow(-1, 0, (n - 1) * stride + kernel)

    def _with_bias(self, out: Tensor) -> Optional[Tensor]:
        # the bias once per output, as it leaves; this also makes a fresh, contiguous tensor
        if out.size(-1) == 0:
            return None
        bias = self.current_bias()
        if bias is not None:
            return out + bias.view(-1, 1)
        return out

    def output_length(self, length: int) -> int:
        """How many outputs ``module`` gives for an input of ``length`` samples.

        0 for an input the module refuses (shorter than it allows). A network reads this to
        know how long the input of a later layer is sure to be (see :meth:`follow`).
        """
        if length < self.shortest:
            return 0
        return self._last_output(length) - self.padding

    def _last_output(self, received: int) -> int:
        """Full-convolution index one past the last output of a signal of ``received`` inputs."""
        return (received - 1) * self.stride + self.span + self.output_padding - self.padding

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        reach = self.received * self.stride
        if self.emitted > reach:
            # still inside the left padding (see _determined): no bound worth the trouble
            return 1
        # no output past received * stride is determined before the end
        needed = -(-(self.emitted + outputs) // self.stride) - self.received
        if needed <= 0:
            # their values are in, only whether they exist is not (``padding`` crops the last
            # outputs if the signal ends): the layers before may tell that with fewer samples
            # than they need to emit anything, so there is no bound in inputs to give
            return 0
        return needed

    def _determined(self, received: int, emitted: int) -> int:
        """Full-convolution index one past the outputs that ``received`` inputs determine.

        An output is determined once no later input adds to it and it exists for every valid
        signal that starts with these inputs (``module`` refuses signals shorter than
        ``shortest``).
        """
        stride = self.stride
        # input `received` adds to this output first...
        reach = received * stride
        if emitted > reach:
            # ...unless that one is cropped: while the left padding lasts, gaps between taps
            # (stride or dilation larger than the kernel allows) may come before the next tap
            reach = emitted + self.span * stride
            for tap in range(0, self.span, self.dilation):
                first = max(received, -((tap - emitted) // stride))
                reach = min(reach, first * stride + tap)
        # the outputs that exist whatever comes next: those of the longest input known to come
        length = max(received, self.shortest)
        if not torch.jit.is_scripting():
            length = max(length, self._input_length())
        return min(reach, self._last_output(length))

    @torch.jit.unused
    def follow(self, input_length: Callable[[], int]) -> None:
        """Gives the stream a way to know how long its input would be if the signal ended now.

        A network calls this for a transposed convolution behind other layers. Its last
        ``padding`` outputs are cropped if the signal ends, so on its own the stream holds them
        until the next input arrives; when the layers before it are sure to emit more (a
        padded convolution owes its right-padding outputs), they are emitted as soon as their
        inputs are in. The callable is not a child module: it reads the caller.
        """
        self.__dict__["_input_length"] = input_length

    @torch.jit.unused
    def _input_length(self) -> int:
        outer = self.__dict__.get("_input_length")
        return 0 if outer is None else int(outer())

    def _gather(self, x: Tensor, y: Optional[Tensor], start: int, end: int, ready: int) -> Tensor:
        """Outputs up to ``ready`` when they reach past this block's result or before it.

        That happens at ``final=True`` with ``output_padding``, on empty blocks, and when
        ``padding`` keeps outputs that no later input reaches waiting for the next input.
        """
        emitted = self.emitted
        held = self.held
        last = end if y is not None else emitted + held
        length = max(ready, last) - emitted
        channels = self.module.out_channels
        total = torch.zeros(x.size(0), channels, length, dtype=x.dtype, device=x.device)
        if held > 0:
            total.narrow(-1, 0, held).copy_(self.acc.narrow(-1, 0, held))
        if y is not None and end > emitted:
            first = max(start, emitted)
            total.narrow(-1, first - emitted, end - first).add_(
                y.narrow(-1, first - start, end - first)
            )
        self._hold(total.narrow(-1, ready - emitted, max(last - ready, 0)))
        return total.narrow(-1, 0, ready - emitted)

    def _hold(self, tail: Tensor) -> None:
        """Keeps ``tail`` (the sums after the emitted outputs) in the preallocated ``acc``."""
        size = tail.size(-1)
        self.held = max(size, 0)
        if size <= 0:
            return
        acc = self.acc
        if (
            acc.dim() != 3
            or acc.size(0) != tail.size(0)
            or acc.size(1) != tail.size(1)
            or acc.size(2) < size
            or acc.dtype != tail.dtype
            or acc.device != tail.device
        ):
            # regular streams hold fewer than `span` sums, and the steady single-input path
            # needs exactly `span` columns, zero after the held ones: nothing writes there
            capacity = max(size, self.span if self.regular else self.span + self.padding)
            acc = state_tensor([tail.size(0), tail.size(1), capacity], tail, zeros=True)
            self.acc = acc
        # never autograd history: a graph through the held sums would grow with the stream
        acc.narrow(-1, 0, size).copy_(tail.detach())

    @torch.jit.unused
    def _apply(self, fn: Any, recurse: bool = True) -> "ConvTranspose1dStream":
        self.acc = fn(self.acc)
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        return self

    def reset_state(self) -> None:
        self.held = 0
        self.received = 0
        self.emitted = self.padding

    @torch.jit.unused
    def timing(self) -> Timing:
        stride, reach, padding = self.stride, self.span - 1, self.padding
        return Timing.upsampling(
            stride,
            lambda i: -((reach - i - padding) // stride),
            lambda i: (i + padding) // stride,
        )

    def __repr__(self) -> str:
        m = self.module
        options = [f"kernel_size={self.kernel_size}", f"stride={self.stride}"]
        for name, value, default in [
            ("padding", m.padding[0], 0),
            ("output_padding", m.output_padding[0], 0),
            ("dilation", self.dilation, 1),
            ("groups", self.groups, 1),
            ("bias", m.bias is not None, True),
            ("edges", self.edges, "pad"),
        ]:
            if value != default:
                options.append(f"{name}={value!r}")
        return f"ConvTranspose1dStream({m.in_channels}, {m.out_channels}, {', '.join(options)})"

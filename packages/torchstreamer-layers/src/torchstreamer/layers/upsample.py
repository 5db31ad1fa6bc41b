"""The stream of ``nn.Upsample`` over time."""

from typing import Final, Optional

import torch
import torch.nn.functional as F
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

# Whether PyTorch's CPU kernels were compiled to fuse a product and a sum into one rounding:
# its x86 kernels for AVX2 and AVX-512 were (the index of nearest-exact says so, measured),
# the baseline one was not.
_CPU_FMA: Final = torch.backends.cpu.get_cpu_capability().startswith("AVX")

# For each (factor, nearest-exact, variant of the arithmetic): how far the nearest kernel's
# picks have been seen to follow i // factor, and whether that is where they first depart
_REPEATS: dict[tuple[int, bool, int], tuple[int, bool]] = {}
_REPEATS_CHUNK: Final = 1 << 16


class Upsample1dStream(BaseStream):
    """Streams an ``nn.Upsample`` by an integer factor exactly, ends included.

    Modes ``"nearest"`` and ``"nearest-exact"`` copy to each output the input that PyTorch's
    kernel picks for it. In exact arithmetic that is input ``i // factor`` for output ``i``,
    but the kernel computes it in single precision (in double, rounded to single precision
    at the end, for float64 on the CPU), and the stream follows that arithmetic output index
    by output index. For factors whose reciprocal single precision rounds down the most (41,
    47, 55, 61, 82, ...) it picks input ``i // factor - 1`` for some multiples ``i`` of the
    factor from output ``factor`` on, in float32, float16 and bfloat16; for every factor its
    picks depart from ``i // factor``, by up to two inputs either way, somewhere past a few
    million outputs (6.3 million for nearest-exact with a factor of 3 or 7 in float32, up to
    30 million for nearest in float64; a few minutes of audio at 48 kHz). An output is
    emitted once the input it picks has arrived and the inputs so far say it exists
    (``i < factor * inputs``): up to that departure every output leaves with its input, past
    it an output whose pick is a later input waits for it. The CPU's nearest-exact index
    depends on whether PyTorch's kernels were compiled to fuse a multiply-add (its x86 AVX2
    and AVX-512 kernels were, its baseline one was not); other CPUs are taken not to fuse
    it. On CUDA the stream follows the arithmetic of PyTorch's CUDA kernels, as their source
    has it. Mode ``"linear"``
    (``align_corners=False``) interpolates between the two inputs around each output and
    holds one input back: an output is emitted once every input with a nonzero weight has
    arrived. Its first outputs repeat the first input, and its last ones, which repeat the
    last input, come with ``final=True``.

    The linear weights follow PyTorch's own arithmetic, output index by output index: single
    precision for float32, float16 and bfloat16 (rounded step by step on the CPU, with the
    fused multiply-add of the CUDA kernel on CUDA), double for float64. So they equal
    ``module(x)`` on long signals too, where that arithmetic drifts from the exact weights (by
    more than float32 rounding after a few hundred samples with a factor of 3). It also makes
    the weight of the next input, zero in exact arithmetic for the middle output of an odd
    factor, a rounding error: such outputs wait for that input too, and :meth:`timing` counts
    it. For nearest modes :meth:`timing` gives the dependencies before the kernel's picks
    depart from ``i // factor`` (an output on the input ``i // factor``).

    Nearest modes repeat the inputs of a block with ``repeat_interleave``, or where it is
    faster (a factor of 2 or 3, many channels, a large block) with PyTorch's own kernel, once
    that has been seen to pick input ``i // factor`` for blocks as long, as long as every
    output of the block picks input ``i // factor``: how far that holds is found once per
    process for each factor, mode and arithmetic, by scanning the kernel's index arithmetic
    as far as streams go. Past that the stream works out the picks a few thousand outputs
    ahead, gathers small blocks, and repeats the inputs of large blocks and then gathers the
    outputs whose pick departs. Linear mode works out the inputs and weights of each output
    a few thousand outputs ahead, gathers the inputs of small blocks, and interpolates large
    blocks phase by phase from slices of the input, at close to the speed of ``module(x)``
    on the whole signal.

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

    # Nearest modes: PyTorch's own kernel repeats a block faster than repeat_interleave (up to
    # twice as fast, on a CPU) for factors up to KERNEL_FACTOR, with at least KERNEL_ROWS rows
    # (batch * channels) and KERNEL_ELEMENTS output elements; otherwise it is slower.
    KERNEL_FACTOR: Final = 3
    KERNEL_ROWS: Final = 32
    KERNEL_ELEMENTS: Final = 8192
    # Linear mode: the outputs whose inputs and weights are worked out at a time, ahead of the
    # blocks that need them, so that a small block costs a few slices rather than a dozen ops.
    TABLE: Final = 4096
    # Linear mode: blocks of at least this many output elements are interpolated phase by
    # phase from slices of the input, which beats two gathers once the few dozen ops it takes
    # are paid for; PHASE_CHUNK elements at a time, so that the phases stay in cache until
    # they are interleaved.
    PHASE_ELEMENTS: Final = 1 << 17
    # Nearest modes, once the kernel's picks depart from i // factor: blocks of fewer output
    # elements than this are gathered; larger ones repeat their inputs, then gather the
    # outputs whose pick departs.
    GATHER_ELEMENTS: Final = 1 << 14
    # Whether PyTorch's CPU kernels fuse multiply-adds (see _CPU_FMA), as TorchScript takes it
    CPU_FMA: Final = _CPU_FMA
    PHASE_CHUNK: Final = 1 << 19

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
        self.mode = mode
        self.linear = mode == "linear"
        self.exact = mode == "nearest-exact"
        # 1 / factor rounded to single precision, as the kernel's float32 arithmetic has it
        self.scale_float = float(torch.tensor(1.0 / self.factor, dtype=torch.float32))
        self.module_hint = repr(module)
        self.buffer = TimeBuffer()
        self.received = 0
        self.emitted = 0
        # linear mode: for each output from table_start on, the place where it samples the
        # input, the input at or before that place and the weights of that input and the next;
        # they depend on the output's index alone (remade for another dtype or device)
        self.table_start = 0
        self.table_place = torch.empty(0)
        self.table_first = torch.empty(0, dtype=torch.long)
        self.table_keep = torch.empty(0)
        self.table_weight = torch.empty(0)
        # nearest modes: the table holds, in table_first, the input the kernel picks for each
        # output, in the arithmetic of table_variant (see _picks); outputs below
        # repeat_until pick input i // factor in the arithmetic of repeat_variant, and while
        # it is not negative the stream holds nothing back and `received` is not kept (it is
        # emitted // factor)
        self.table_moved = torch.empty(0, dtype=torch.long)
        self.table_variant = -1
        self.repeat_until = -1
        self.repeat_variant = -1

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if self.linear:
            if self.factor > 1:
                return self._linear(x, final)
            # linear interpolation by 1 copies its input
            return x.clone() if x.size(-1) > 0 else None
        n = x.size(-1)
        stop = self.emitted + n * self.factor
        # the kernel's arithmetic (see _picks): 0 on the CPU in single precision, 1 there in
        # double (float64), 2 on CUDA
        variant = 2 if x.is_cuda else (1 if x.dtype == torch.float64 else 0)
        if (stop >= self.repeat_until or variant != self.repeat_variant) and (
            torch.jit.is_scripting() or not self._repeats(variant, stop)
        ):
            return self._gather(x, variant, final)
        # every output of the block picks input i // factor, which is in the block, and the
        # next output an input yet to come
        if final:
            self.reset_state()
        else:
            # (received is emitted // factor while blocks are repeated: not kept)
            self.emitted = stop
        if n == 0:
            return None
        if n == 1:
            # a copy of the sample broadcast costs less than repeat_interleave
            return x.expand(-1, -1, self.factor).clone(memory_format=torch.contiguous_format)
        if (
            self.factor <= self.KERNEL_FACTOR
            and x.size(0) * x.size(1) >= self.KERNEL_ROWS
            and x.numel() * self.factor >= self.KERNEL_ELEMENTS
            and not torch.jit.is_scripting()
            and self._kernel_repeats(x)
        ):
            return F.interpolate(x, scale_factor=float(self.factor), mode=self.mode)
        return x.repeat_interleave(self.factor, dim=-1)

    @torch.jit.unused
    def _repeats(self, variant: int, stop: int) -> bool:
        """Whether outputs up to ``stop`` (included) pick input ``i // factor``, while the
        stream holds nothing back.

        Learns from the module-wide record how far the kernel's picks follow ``i // factor``
        for this factor, mode and ``variant`` of the arithmetic, and notes it in
        ``repeat_until`` for the blocks to come. Only while the stream holds no input back
        (as before its first gathered block) may it repeat the inputs of its blocks.
        """
        if torch.compiler.is_compiling():
            return False
        if self.repeat_until < 0 and not (
            self.emitted == self.received * self.factor
            and self.buffer.held == 0
            and self.buffer.skip == 0
        ):
            return False
        # output `stop`, the next one, must pick an input yet to come: nothing is held
        self.repeat_until = _repeats_until(self.factor, self.exact, variant, stop + 1)
        self.repeat_variant = variant
        return stop < self.repeat_until

    def _gather(self, x: Tensor, variant: int, final: bool) -> Optional[Tensor]:
        """Nearest modes, output by output: each output copies the input the kernel picks.

        An output is emitted once the input it picks has arrived and the inputs so far say
        that it exists (``i < received * factor``); with ``final=True`` every output left,
        its pick clamped to the last input as the kernel clamps it. The inputs that outputs
        still to come pick are held.
        """
        if self.repeat_until >= 0:
            # blocks were repeated until now, which keeps no count of the inputs
            self.received = self.emitted // self.factor
        # the stream holds inputs back from here on: no block is repeated until it ends
        self.repeat_until = -1
        taken = self._extend(x, final)
        if taken is None:
            return None
        view, received = taken
        base = received - view.size(-1)
        start = self.emitted
        stop = received * self.factor
        # the picks of the outputs that may be ready, and of the next one
        self._cover_picks(start, stop + 1, variant)
        offset = start - self.table_start
        picks = self.table_first[offset : stop - self.table_start]
        if final:
            count = stop - start
            picks = picks.clamp_max(received - 1)
        else:
            # the picks never decrease: the ready outputs are a prefix
            count = int(torch.searchsorted(picks, received - 1, right=True))
            picks = picks[:count]
        y: Optional[Tensor] = None
        if count > 0:
            y = self._copy_picks(view, base, start, picks)
        if final:
            self.reset_state()
        else:
            emitted = start + count
            self.emitted = emitted
            self.received = received
            # hold the input the next output picks, and the one at i // factor that large
            # blocks repeat before they gather the outputs whose pick departs from it
            keep = min(int(self.table_first[offset + count]), emitted // self.factor)
            self.buffer.advance(view, keep - base)
        return y

    def _copy_picks(self, view: Tensor, base: int, start: int, picks: Tensor) -> Tensor:
        """Outputs ``start`` on, each a copy of input ``picks`` (``view`` starts at ``base``).

        Few outputs are gathered; many, whose picks mostly follow ``i // factor``, repeat the
        inputs like the blocks before the kernel's picks depart, and the outputs whose
        pick departs (in ``table_moved``) are then gathered over them.
        """
        factor = self.factor
        count = picks.size(0)
        low = start // factor
        if count * view.size(0) * view.size(1) < self.GATHER_ELEMENTS:
            return _take(view, picks - base)
        # the whole groups of `factor` outputs that hold these outputs, each input repeated
        high = (start + count - 1) // factor
        y = view[..., low - base : high + 1 - base].repeat_interleave(factor, dim=-1)
        if y.size(-1) > count:
            y = y[..., start - low * factor :][..., :count].contiguous()
        moved = self.table_moved
        lo = int(torch.searchsorted(moved, start))
        hi = int(torch.searchsorted(moved, start + count))
        if hi > lo:
            where = moved[lo:hi] - start
            size = [y.size(0), y.size(1), where.size(0)]
            y.scatter_(-1, where.to(y.device).expand(size), _take(view, picks[where] - base))
        return y

    def _cover_picks(self, start: int, stop: int, variant: int) -> None:
        """Makes the table hold the kernel's picks for outputs ``start`` to ``stop``, and
        ``table_moved`` those of them that do not pick ``i // factor``."""
        if (
            start < self.table_start
            or stop > self.table_start + self.table_first.size(0)
            or variant != self.table_variant
        ):
            index = torch.arange(start, start + max(stop - start, self.TABLE))
            picks = _picks(index, self.factor, self.exact, variant, self.CPU_FMA)
            self.table_first = picks
            self.table_moved = index[picks != index // self.factor]
            self.table_start = start
            self.table_variant = variant

    @torch.jit.unused
    def _kernel_repeats(self, x: Tensor) -> bool:
        """Whether PyTorch's kernel repeats each input of a block as long as ``x``.

        Its index arithmetic picks input ``i // factor`` for output ``i`` of a block until it
        rounds differently (see :func:`_picks`). So the kernel is tried once on a ramp
        ``0, 1, 2, ...`` at least as long as the block, in its dtype and on its device, and
        trusted only if it repeated each step of the ramp.
        """
        length = x.size(-1)
        if torch.compiler.is_compiling() or length > 1 << 20:
            return False
        # by dtype and device, the longest ramp tried and whether the kernel repeated it (a
        # dict with string keys, so that TorchScript can take it as an attribute)
        tried: dict[str, tuple[int, bool]] = self.__dict__.setdefault("_kernel_tried", {})
        key = f"{x.dtype} {x.device}"
        longest, repeats = tried.get(key, (0, True))
        if length > longest:
            longest = 1 << (length - 1).bit_length()
            # a ramp that the dtype holds exactly
            repeats = longest <= 2 / torch.finfo(x.dtype).eps
            if repeats:
                ramp = torch.arange(longest, dtype=x.dtype, device=x.device).view(1, 1, -1)
                picked = F.interpolate(ramp, scale_factor=float(self.factor), mode=self.mode)
                repeats = torch.equal(picked, ramp.repeat_interleave(self.factor, dim=-1))
            tried[key] = (longest, repeats)
        return repeats

    def _extend(self, x: Tensor, final: bool) -> Optional[tuple[Tensor, int]]:
        """The held inputs followed by ``x``, and the inputs received with it; None when there
        is nothing to do (an empty block, or an empty stream ending, which is reset)."""
        n = x.size(-1)
        if n == 0 and not final:
            return None
        received = self.received + n
        if received == 0:
            self.reset_state()
            return None
        return self.buffer.extend(x), received

    def _linear(self, x: Tensor, final: bool) -> Optional[Tensor]:
        taken = self._extend(x, final)
        if taken is None:
            return None
        view, received = taken
        base = received - view.size(-1)
        last = received - 1
        math = torch.float64 if x.dtype == torch.float64 else torch.float32
        start = self.emitted
        # outputs from received * factor on sample the input past its last sample
        stop = received * self.factor
        if final:
            # every output left, with the kernel's clamps at the end of the signal
            _, first, keep, weight = self._positions(start, stop, last, math, x.device)
        else:
            self._cover(start, stop, math, x.device)
            offset = start - self.table_start
            # an output is ready once the inputs on both sides of where it samples have
            # arrived, or the one there if it samples an input exactly (its next input has
            # weight zero); the ready outputs are a prefix, as that place never moves back
            places = self.table_place[offset : stop - self.table_start]
            end = offset + int(torch.searchsorted(places, last, right=True))
            first = self.table_first[offset:end]
            keep = self.table_keep[offset:end]
            weight = self.table_weight[offset:end]
        count = first.size(0)
        if count == 0:
            self._hold(view, received)
            return None
        inputs = view.to(math)
        first = first - base
        if count * view.size(0) * view.size(1) < self.PHASE_ELEMENTS:
            y = _blend(inputs, first, keep, weight, view.size(-1) - 1)
        else:
            y = self._interpolate(inputs, start, first, keep, weight)
        self.emitted = start + count
        if final:
            self.reset_state()
        else:
            self._hold(view, received)
        return y.to(x.dtype)

    def _interpolate(
        self, inputs: Tensor, start: int, first: Tensor, keep: Tensor, weight: Tensor
    ) -> Tensor:
        """:func:`_blend` for many outputs, from output ``start`` on, mostly phase by phase."""
        last = inputs.size(-1) - 1
        count = first.size(0)
        factor = self.factor
        # the outputs up to the first whole group of `factor` outputs (and all of the first
        # group of the signal, whose first outputs the kernel clamps to the first input)
        lead = min(factor - start if start < factor else -start % factor, count)
        body = count - (count - lead) % factor
        while body > lead and int(first[body - 1]) >= last:
            # the last group of the signal reads the last input twice: gathered with the rest
            body -= factor
        y = torch.empty(
            inputs.size(0), inputs.size(1), count, dtype=inputs.dtype, device=inputs.device
        )
        y[..., :lead] = _blend(inputs, first[:lead], keep[:lead], weight[:lead], last)
        y[..., body:] = _blend(inputs, first[body:], keep[body:], weight[body:], last)
        if body > lead:
            whole = y[..., lead:body].view(y.size(0), y.size(1), -1, factor)
            self._by_phase(inputs, first[lead:body], keep[lead:body], weight[lead:body], whole)
        return y

    def _by_phase(
        self, inputs: Tensor, first: Tensor, keep: Tensor, weight: Tensor, y: Tensor
    ) -> None:
        """Writes whole groups of outputs into ``y`` (``[B, C, groups, factor]``) by phase.

        Output ``i`` of every group samples the same place between two inputs (in exact
        arithmetic), so along the groups it reads contiguous slices of ``inputs``: a few long
        vectorised ops instead of gathers. Where the kernel's rounding moves an output to the
        pair of inputs before (the middle output of an odd factor, which samples an input in
        exact arithmetic), that pair is interpolated too and picked for those groups. A chunk
        of groups at a time, the phases are computed side by side in a scratch tensor, then
        interleaved into ``y``.
        """
        factor = self.factor
        last = inputs.size(-1) - 1
        grid = first.view(-1, factor)
        groups = grid.size(0)
        keep = keep.view(groups, factor).t().contiguous()
        weight = weight.view(groups, factor).t().contiguous()
        # each output's first input less its group's number, phase by phase: the same in
        # every group, but one less in groups where the rounding moved the output back
        shift = (grid - torch.arange(groups, device=grid.device).unsqueeze(1)).t()
        highs: list[int] = shift.amax(dim=1).tolist()
        lows: list[int] = shift.amin(dim=1).tolist()
        chunk = max(self.PHASE_CHUNK // (y.size(0) * y.size(1) * factor), 1)
        scratch = torch.empty(
            y.size(0), y.size(1), factor, min(chunk, groups), dtype=y.dtype, device=y.device
        )
        for group in range(0, groups, chunk):
            n = min(chunk, groups - group)
            z = scratch[..., :n]
            for phase in range(factor):
                out = z[:, :, phase]
                keeps = keep[phase, group : group + n]
                weights = weight[phase, group : group + n]
                high, low = highs[phase], lows[phase]
                if high - low <= 1 and low >= 0 and high + groups <= last:
                    i = high + group
                    # as _blend rounds it
                    torch.mul(inputs[..., i + 1 : i + 1 + n], weights, out=out)
                    out.addcmul_(inputs[..., i : i + n], keeps)
                    if low < high:
                        moved = torch.mul(inputs[..., i : i + n], weights)
                        moved.addcmul_(inputs[..., i - 1 : i - 1 + n], keeps)
                        torch.where(shift[phase, group : group + n] < high, moved, out, out=out)
                else:
                    firsts = grid[group : group + n, phase]
                    out.copy_(_blend(inputs, firsts, keeps, weights, last))
            y[:, :, group : group + n].copy_(z.transpose(-1, -2))

    def _cover(self, start: int, stop: int, math: torch.dtype, device: torch.device) -> None:
        """Makes the table hold outputs ``start`` to ``stop``, in ``math`` on ``device``."""
        table = self.table_weight
        if (
            start < self.table_start
            or stop > self.table_start + table.size(0)
            or table.dtype != math
            or table.device != device
        ):
            size = max(stop - start, self.TABLE)
            place, first, keep, weight = self._positions(start, start + size, -1, math, device)
            self.table_start = start
            self.table_place = place
            self.table_first = first
            self.table_keep = keep
            self.table_weight = weight

    def _positions(
        self, start: int, stop: int, last: int, math: torch.dtype, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Where outputs ``start`` to ``stop`` sample the input, as the kernel computes it.

        Returns that place, ``first``, the input at or before it, and the weights ``keep`` of
        that input and ``weight`` of the next one. ``last`` is the last input of the signal,
        or -1 while it is unknown; the kernel clamps ``first`` to it.
        """
        index = torch.arange(start, stop, device=device)
        place = self._place(index, math).clamp_min(0.0)
        # the place is never negative: truncating it is flooring it
        first = place.long()
        if last >= 0:
            first = first.clamp_max(last)
            weight = (place - first).clamp_max(1.0)
        else:
            weight = place - first
        return place, first, 1.0 - weight, weight

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        factor = self.factor
        if factor == 1 and self.linear:
            return outputs
        # output j waits for input j // factor at least: in linear mode for the input at the
        # floor of (j + 1/2) / factor - 1/2 too, in nearest modes for the one it picks
        received = self.received if self.linear or self.repeat_until < 0 else self.emitted // factor
        return max(-(-(self.emitted + outputs) // factor) - received, 1)

    def _place(self, index: Tensor, math: torch.dtype) -> Tensor:
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


def _take(inputs: Tensor, index: Tensor) -> Tensor:
    """``inputs[..., index]``, by ``gather`` (many times faster than indexing over time)."""
    size = [inputs.size(0), inputs.size(1), index.size(0)]
    return inputs.gather(-1, index.to(inputs.device).expand(size))


def _picks(index: Tensor, factor: int, exact: bool, variant: int, fused: bool) -> Tensor:
    """The input PyTorch's nearest kernel picks for outputs ``index`` (before it clamps them
    to the last input), in the arithmetic of ``variant``: 0 the CPU's in single precision
    (float32, float16 and bfloat16), 1 the CPU's in double (float64), 2 CUDA's (single
    precision whatever the dtype).

    Step by step as the kernels round it, with ``scale = 1 / factor``: on the CPU in the
    dtype's "opmath" (float for all but float64), ``floorf(scale * i)`` for nearest and
    ``floorf((scale * (i + 0.5) - 0.5) + 0.5)`` for nearest-exact, whose last sum is taken in
    double and rounded to float by ``floorf``, and whose product and difference are one
    rounding where the CPU kernel fuses them (``fused``); on CUDA, in float,
    ``floorf(i * scale)`` and ``floorf((i + 0.5) * scale)``.
    """
    if variant == 1:
        scale = 1.0 / factor
        if exact:
            return (((index.double() + 0.5) * scale - 0.5) + 0.5).float().floor().long()
        return (index.double() * scale).float().floor().long()
    scale = float(torch.tensor(1.0 / factor, dtype=torch.float32))
    if variant == 2:
        if exact:
            return ((index.float() + 0.5) * scale).floor().long()
        return (index.float() * scale).floor().long()
    if not exact:
        return (index.float() * scale).floor().long()
    shifted = index.float() + 0.5
    # the product of two floats is exact in double: one rounding, as a fused multiply-add
    place = (shifted.double() * scale - 0.5).float() if fused else shifted * scale - 0.5
    return (place.double() + 0.5).float().floor().long()


def _repeats_until(factor: int, exact: bool, variant: int, stop: int) -> int:
    """An output index up to which the nearest kernel picks input ``i // factor``, at least
    ``stop`` unless the picks depart from ``i // factor`` before it (then where they do).

    Scans the picks a chunk at a time as far as streams need, once per process for each
    factor, mode and arithmetic: for most factors they follow ``i // factor`` for millions of
    outputs, for a few (41, 47, 55, 61, 82, ... in single precision) they depart at once.
    """
    key = (factor, exact, variant)
    until, departs = _REPEATS.get(key, (0, False))
    while not departs and until < stop:
        size = min(max(stop - until, _REPEATS_CHUNK), 16 * _REPEATS_CHUNK)
        index = torch.arange(until, until + size)
        differ = (_picks(index, factor, exact, variant, _CPU_FMA) != index // factor).nonzero()
        if len(differ) > 0:
            until += int(differ[0])
            departs = True
        else:
            until += size
        _REPEATS[key] = (until, departs)
    return until


def _blend(inputs: Tensor, first: Tensor, keep: Tensor, weight: Tensor, last: int) -> Tensor:
    """``keep * inputs[..., first] + weight * inputs[..., first + 1]``, the second index
    clamped to ``last``.

    In the order of PyTorch's CPU kernel: the second product, then the first one added to it,
    by ``addcmul`` (rounded once where the CPU fuses multiply-adds, as in the kernel).
    """
    size = [inputs.size(0), inputs.size(1), first.size(0)]
    a = inputs.gather(-1, first.expand(size))
    y = inputs.gather(-1, (first + 1).clamp_max_(last).expand(size))
    return y.mul_(weight).addcmul_(a, keep)

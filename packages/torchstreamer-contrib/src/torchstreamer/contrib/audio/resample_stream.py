"""The stream of :class:`~torchstreamer.contrib.audio.Resample`: :class:`ResampleStream`."""

from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from torchstreamer.core import BaseStream, Edges, StreamError, TimeBuffer, Timing, check_edges

from .resample import KAISER_BETA, Resample

__all__ = ["ResampleStream"]


class ResampleStream(BaseStream):
    """Streams :class:`Resample` exactly: sample-rate conversion block by block.

    The concatenated outputs equal ``Resample(...)(x)`` for the whole signal, both edges
    included: the filter's zero padding is applied at the start of the stream and, on
    ``final=True``, at its end, where the output is cut to ``ceil(T * target_fs / source_fs)``
    samples. Each output is emitted as soon as the inputs its filter taps reach have arrived,
    so the stream lags its input by :attr:`lookahead` input samples (rounded up to whole
    samples), about ``lowpass_filter_width / rolloff`` periods of the lower of the two rates.

    Built either from the rates, with the arguments of torch-streamer 0.0.2's
    ``torchstreamer.audio.ResampleStream``, or from a :class:`Resample` module (also through
    ``torchstreamer.create_stream(module)``), whose filter it then shares.

    Args:
        source_fs: the input sample rate (a positive integer), or a :class:`Resample` module
            to stream, in which case the remaining arguments are taken from it and must be
            left out.
        target_fs: the output sample rate.
        resampling_method: ``"sinc_interp_hann"`` or ``"sinc_interp_kaiser"``.
            (Default: ``"sinc_interp_hann"``)
        lowpass_filter_width: zero crossings of the sinc on each side. (Default: 6)
        rolloff: the cutoff as a fraction of the lower Nyquist frequency. (Default: 0.99)
        beta: the shape of the Kaiser window. (Default: 14.769656459379492)
        edges: ``"pad"`` or ``"valid"``; both stream ``module(x)`` with its padding, since
            resampling has no unpadded form (torch-streamer 0.0.2 padded as well).
            (Default: ``"pad"``)

    Raises:
        TypeError: if a module is given together with rates or options.
        ValueError: for arguments :class:`Resample` rejects.
        StreamError: if ``edges`` is not ``"pad"`` or ``"valid"``.

    Shape:
        ``[B, C, T]``, ``[C, T]`` or ``[T]`` in; the output keeps the rank, with
        ``T_out`` samples on the last axis. Channels and batch entries are resampled
        independently.

    Example:
        >>> import torch
        >>> from torchstreamer.contrib.audio import ResampleStream
        >>> stream = ResampleStream(16000, 24000)
        >>> x = torch.randn(2, 1000)
        >>> blocks = [stream(x[:, i : i + 160], final=i + 160 >= 1000) for i in range(0, 1000, 160)]
        >>> y = torch.cat([b for b in blocks if b is not None], dim=-1)
        >>> y.shape
        torch.Size([2, 1500])
        >>> torch.testing.assert_close(y, stream.module(x))
        >>> stream.rate, stream.receptive_field, stream.lookahead
        (Fraction(3, 2), 13, Fraction(6, 1))
    """

    weight: Tensor
    first_taps: list[int]
    last_taps: list[int]
    ready_table: list[int]

    def __init__(
        self,
        source_fs: Union[int, Resample],
        target_fs: Optional[int] = None,
        # positional, as in torch-streamer 0.0.2
        resampling_method: str = "sinc_interp_hann",
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
        beta: float = KAISER_BETA,
        *,
        edges: Edges = "pad",
    ) -> None:
        super().__init__()
        check_edges(edges)
        if isinstance(source_fs, Resample):
            given = (resampling_method, lowpass_filter_width, rolloff, beta)
            if target_fs is not None or given != ("sinc_interp_hann", 6, 0.99, KAISER_BETA):
                raise TypeError(
                    "ResampleStream: a Resample module brings its own rates and options; "
                    "pass either the module or the rates, not both"
                )
            module = source_fs
        elif target_fs is None:
            raise TypeError("ResampleStream: target_fs is required when streaming from rates")
        else:
            module = Resample(
                source_fs,
                target_fs,
                lowpass_filter_width=lowpass_filter_width,
                rolloff=rolloff,
                resampling_method=resampling_method,
                beta=beta,
            )
        self.module = module
        self.edges = edges
        self.module_hint = repr(module)
        self.period_in = module.period_in
        self.period_out = module.period_out
        self.identity = module.period_in == module.period_out
        self.width = module.width
        self.span = 2 * module.width + module.period_in
        support = module.support()
        self.first_taps = [first for first, _ in support]
        self.last_taps = [last for _, last in support]
        self.steady, self.ready_table = self._ready_table()
        self.buffer = TimeBuffer()
        self.weight = torch.empty(0)
        self.received = 0
        self.next_out = 0
        self.base = 0

    @classmethod
    def from_module(cls, module: Resample, *, edges: Edges = "pad") -> "ResampleStream":
        """The stream of ``module``; the same as ``ResampleStream(module)``."""
        return cls(module, edges=edges)

    def _ready_table(self) -> tuple[int, list[int]]:
        """How many outputs the first ``e`` inputs determine, for ``e`` up to ``steady`` plus
        one period; from ``steady`` on, every further ``period_in`` inputs add ``period_out``.

        Outputs leave in order, so an output also waits for every output before it: with the
        sinc's zeros a phase may read less far ahead than the phase before it.
        """
        period_in, period_out, lasts = self.period_in, self.period_out, self.last_taps
        # once the first window is out, the waits repeat with the period
        steady = max(lasts) + 1
        table: list[int] = []
        outputs = 0
        wait = lasts[0]
        for end in range(steady + period_in):
            while wait <= end - 1:
                outputs += 1
                following = outputs // period_out * period_in + lasts[outputs % period_out]
                wait = max(wait, following)
            table.append(outputs)
        return steady, table

    def ready(self, received: int) -> int:
        """Outputs that the first ``received`` inputs determine, before the end of the stream."""
        table = self.ready_table
        if received < len(table):
            return table[received]
        periods = (received - self.steady) // self.period_in
        return table[received - periods * self.period_in] + periods * self.period_out

    def forward(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        """Streams one block; as :meth:`BaseStream.forward`, and also takes ``[T]`` blocks.

        Args:
            x: the next block, ``[T]``, ``[C, T]`` or ``[B, C, T]``; ``T`` may be 0.
            final: whether this is the last block; flushes the rest, then resets.
                (Default: False)

        Returns:
            the outputs this block completes, with the rank of ``x``, or ``None``.

        Raises:
            StreamError: on a block of another rank, a non-floating dtype, a changed batch
                size, or a dtype or device other than the stream's so far; the stream's state
                is left as it was.
        """
        rank = x.dim()
        if rank == 1:
            xb = x.unsqueeze(0).unsqueeze(0)
        elif rank == 2:
            xb = x.unsqueeze(0)
        elif rank == 3:
            xb = x
        else:
            raise StreamError(
                self.stream_name
                + ": expected a [T], [C, T] or [B, C, T] block, got a tensor of shape "
                + str(list(x.shape))
            )
        self.check_block(xb, 3)
        if self.received > 0 and (xb.dtype != self.weight.dtype or xb.device != self.weight.device):
            if not torch.jit.is_scripting():
                raise StreamError(
                    f"{self.stream_name}: the stream under way takes {self.weight.dtype} blocks "
                    f"on {self.weight.device}, got {xb.dtype} on {xb.device}"
                )
            raise StreamError(
                self.stream_name + ": a block's dtype or device changed in mid-stream"
            )
        if final:
            if self.batch_size >= 0:
                self.batch_size = -1
        elif self.batch_size < 0:
            self.batch_size = xb.size(0)
        y = self.step(xb, final)
        if y is None or rank == 3:
            return y
        if rank == 2:
            return y.squeeze(0)
        return y.reshape(y.size(-1))

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        size = x.size(-1)
        if self.identity:
            # equal rates: the module returns its input, as torchaudio does
            return x if size > 0 else None
        received = self.received
        if size == 0:
            if not final:
                return None
            if received == 0:
                self.reset_state()
                return None
        if received == 0:
            # a new stream: the left zero padding, and the filter in the stream's dtype
            x = F.pad(x, (self.width, 0))
            self.weight = self.module.kernel.to(dtype=x.dtype, device=x.device)
        end = received + size
        self.received = end
        buffer = self.buffer
        view = buffer.extend(x)
        if final:
            ready = (end * self.period_out + self.period_in - 1) // self.period_in
        else:
            ready = self.ready(end)
        y: Optional[Tensor] = None
        next_out = self.next_out
        if ready > next_out:
            y = self._resample(view, next_out, ready)
            self.next_out = ready
        if final:
            self.reset_state()
            return y
        # hold from the first window that a later output reads (padded indices)
        keep = ready // self.period_out * self.period_in
        buffer.advance(view, keep - self.base)
        self.base = keep
        return y

    def _resample(self, view: Tensor, first: int, stop: int) -> Tensor:
        """Outputs ``first`` to ``stop - 1`` from the held padded samples ``view``.

        Windows that run past the inputs received are completed with zeros: the outputs kept
        from them have exactly zero filter taps there (see :meth:`Resample.support`), and at
        the end of the stream those zeros are the module's own right padding.
        """
        period_in = self.period_in
        period_out = self.period_out
        first_window = first // period_out
        windows = (stop - 1) // period_out - first_window + 1
        start = first_window * period_in - self.base
        length = (windows - 1) * period_in + self.span
        have = view.size(-1) - start
        if have >= length:
            segment = view.narrow(-1, start, length)
        else:
            segment = F.pad(view.narrow(-1, start, have), (0, length - have))
        batch = view.size(0)
        channels = view.size(1)
        phases = F.conv1d(
            segment.reshape(batch * channels, 1, length), self.weight, stride=period_in
        )
        resampled = phases.transpose(1, 2).reshape(batch, channels, windows * period_out)
        skip = first - first_window * period_out
        return resampled.narrow(-1, skip, stop - first)

    def reset_state(self) -> None:
        self.buffer.clear()
        self.received = 0
        self.next_out = 0
        self.base = 0

    @torch.jit.unused
    def timing(self) -> Timing:
        """Output ``n * period_out + i`` reads inputs ``n * period_in`` plus the taps of phase
        ``i`` (see :meth:`Resample.support`)."""
        if self.identity:
            return Timing.identity()
        period_in, period_out = self.period_in, self.period_out
        firsts, lasts = list(self.first_taps), list(self.last_taps)
        return Timing(
            period_in,
            period_out,
            lambda j: j // period_out * period_in + firsts[j % period_out],
            lambda j: j // period_out * period_in + lasts[j % period_out],
        )

    @torch.jit.unused
    def _apply(self, fn: Any, recurse: bool = True) -> "ResampleStream":
        # the filter of the stream under way is a plain attribute (read on every block): move
        # and cast it with the held samples, so .to(), .double() and .cuda() work in mid-stream
        self.weight = fn(self.weight)
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        return self

    def __repr__(self) -> str:
        extra = f", edges={self.edges!r}" if self.edges != "pad" else ""
        return f"ResampleStream({self.module.extra_repr()}{extra})"

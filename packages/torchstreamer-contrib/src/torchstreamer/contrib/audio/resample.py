"""Band-limited sample-rate conversion by a rational factor: :class:`Resample`."""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["KAISER_BETA", "RESAMPLING_METHODS", "Resample"]

KAISER_BETA = 14.769656459379492
"""The default shape of the Kaiser window (the value torchaudio uses)."""

RESAMPLING_METHODS = ("sinc_interp_hann", "sinc_interp_kaiser")
"""The windows the sinc filter can be tapered with."""


class Resample(nn.Module):
    """Resamples a signal from ``orig_freq`` to ``new_freq`` with a windowed-sinc filter.

    The rates are reduced by their greatest common divisor to ``orig_freq / g`` input samples
    per ``new_freq / g`` output samples. Output ``m`` of each period of ``new_freq / g`` outputs
    is a weighted sum of the inputs around its own time ``m * orig_freq / new_freq``: the
    weights are a sinc lowpass with cutoff ``rolloff`` times the lower Nyquist frequency,
    tapered by a Hann or Kaiser window that spans ``lowpass_filter_width`` zero crossings on
    each side. The signal is padded with zeros at both ends, so an input of ``T`` samples gives
    ``ceil(T * new_freq / orig_freq)`` outputs, the first one aligned with the first input.

    This is the computation of ``torchaudio.functional.resample`` (equal rates give the input
    back unchanged there and here), done without torchaudio. The filter is computed in float64
    and cast to the input's dtype on each call, so float64 signals get a float64 filter; its
    taps beyond the window are exactly zero (see :meth:`support`), which lets
    :class:`ResampleStream` emit each output as soon as its own taps are known.

    Args:
        orig_freq: the input sample rate, a positive integer (e.g. in Hz).
        new_freq: the output sample rate, in the same unit.
        lowpass_filter_width: zero crossings of the sinc on each side of the centre tap; larger
            is sharper and longer. (Default: 6)
        rolloff: the cutoff as a fraction of the lower of the two Nyquist frequencies; below 1
            it leaves a transition band that reduces aliasing. (Default: 0.99)
        resampling_method: the taper of the sinc, ``"sinc_interp_hann"`` or
            ``"sinc_interp_kaiser"``. (Default: ``"sinc_interp_hann"``)
        beta: the shape of the Kaiser window; only used by ``"sinc_interp_kaiser"``.
            (Default: 14.769656459379492)

    Raises:
        TypeError: if a rate is not an integer.
        ValueError: if a rate, ``lowpass_filter_width`` or ``rolloff`` is not positive, or the
            method is unknown.

    Shape:
        ``[..., T]`` in (e.g. ``[T]``, ``[C, T]``, ``[B, C, T]``; every signal is resampled on
        its own), ``[..., ceil(T * new_freq / orig_freq)]`` out.

    Attributes:
        period_in: input samples per period of the filter bank (``orig_freq / g``).
        period_out: output samples per period (``new_freq / g``).
        width: zeros padded before the signal (``width + period_in`` are padded after it).
        kernel: the filter bank, ``[period_out, 1, 2 * width + period_in]`` (float64 until the
            module is moved to another dtype): row ``i`` gives output ``n * period_out + i``
            from padded inputs ``n * period_in`` onwards.

    Example:
        >>> import torch
        >>> from torchstreamer.contrib.audio import Resample
        >>> resample = Resample(16000, 24000)
        >>> (resample.period_in, resample.period_out)
        (2, 3)
        >>> resample(torch.randn(2, 160)).shape
        torch.Size([2, 240])
        >>> resample(torch.randn(4, 1, 7)).shape
        torch.Size([4, 1, 11])
    """

    kernel: Tensor

    def __init__(
        self,
        orig_freq: int,
        new_freq: int,
        *,
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
        resampling_method: str = "sinc_interp_hann",
        beta: float = KAISER_BETA,
    ) -> None:
        super().__init__()
        for name, rate in (("orig_freq", orig_freq), ("new_freq", new_freq)):
            if isinstance(rate, bool) or not isinstance(rate, int):
                raise TypeError(f"Resample: {name} must be an integer, got {rate!r}")
            if rate <= 0:
                raise ValueError(f"Resample: {name} must be positive, got {rate}")
        if not lowpass_filter_width > 0:
            raise ValueError(
                f"Resample: lowpass_filter_width must be positive, got {lowpass_filter_width!r}"
            )
        if not rolloff > 0:
            raise ValueError(f"Resample: rolloff must be positive, got {rolloff!r}")
        if resampling_method not in RESAMPLING_METHODS:
            raise ValueError(
                f"Resample: resampling_method must be one of {', '.join(RESAMPLING_METHODS)}, "
                f"got {resampling_method!r}"
            )
        gcd = math.gcd(orig_freq, new_freq)
        self.orig_freq = orig_freq
        self.new_freq = new_freq
        self.period_in = orig_freq // gcd
        self.period_out = new_freq // gcd
        self.lowpass_filter_width = lowpass_filter_width
        self.rolloff = float(rolloff)
        self.resampling_method = resampling_method
        self.beta = float(beta)
        kernel, support, width = _sinc_filter_bank(
            self.period_in,
            self.period_out,
            zero_crossings=float(lowpass_filter_width),
            rolloff=self.rolloff,
            kaiser_beta=self.beta if resampling_method == "sinc_interp_kaiser" else None,
        )
        self.width = width
        # derived from the arguments, like a weight of a layer without parameters: not saved
        self.register_buffer("kernel", kernel, persistent=False)
        self._support = support

    def forward(self, waveform: Tensor) -> Tensor:
        """Resamples every signal along the last axis of ``waveform``."""
        if self.period_in == self.period_out:
            return waveform
        sizes = waveform.size()
        length = sizes[-1]
        signals = 1
        for size in sizes[:-1]:
            signals *= size
        padded = F.pad(
            waveform.reshape(signals, 1, length), (self.width, self.width + self.period_in)
        )
        kernel = self.kernel.to(dtype=waveform.dtype, device=waveform.device)
        # [signals, phase, window] -> time order: window n gives outputs n * period_out + phase
        phases = F.conv1d(padded, kernel, stride=self.period_in)
        outputs = (length * self.period_out + self.period_in - 1) // self.period_in
        windows = phases.size(2)
        resampled = phases.transpose(1, 2).reshape(signals, windows * self.period_out)
        resampled = resampled[:, :outputs]
        shape = list(sizes[:-1])
        shape.append(outputs)
        return resampled.reshape(shape)

    @torch.jit.unused
    def support(self) -> list[tuple[int, int]]:
        """The inputs each output reads, for each phase of the filter bank.

        Returns:
            for phase ``i``, the offsets ``(first, last)`` such that output
            ``n * period_out + i`` depends on inputs ``n * period_in + first`` to
            ``n * period_in + last`` (negative indices are the zero padding). The filter is
            exactly zero outside these taps. Equal rates give ``[(0, 0)]``.
        """
        if self.period_in == self.period_out:
            return [(0, 0)]
        return list(self._support)

    def extra_repr(self) -> str:
        options = f"{self.orig_freq}, {self.new_freq}"
        if self.lowpass_filter_width != 6:
            options += f", lowpass_filter_width={self.lowpass_filter_width}"
        if self.rolloff != 0.99:
            options += f", rolloff={self.rolloff}"
        if self.resampling_method != "sinc_interp_hann":
            options += f", resampling_method={self.resampling_method!r}, beta={self.beta}"
        return options


def _sinc_filter_bank(
    period_in: int,
    period_out: int,
    *,
    zero_crossings: float,
    rolloff: float,
    kaiser_beta: Optional[float],
) -> tuple[Tensor, list[tuple[int, int]], int]:
    """The polyphase filter bank, its per-phase support and the padding it needs (float64).

    Times are in units of one reduced period divided by ``period_in * period_out``: input
    ``k`` stands at ``k * period_out``, output phase ``i`` at ``i * period_in``. Measured in
    periods of the cutoff frequency, their distance is ``t``; the filter is
    ``sinc(t) * window(t)`` for ``|t| < zero_crossings`` and exactly zero beyond and at the
    sinc's own zeros (``t`` a nonzero integer), so that a stream may leave inputs past the
    support unknown (zero) without changing any output. With ``rolloff=1`` an upsampler
    passes every input through unchanged, and such an output then depends on that input alone.
    """
    cutoff = rolloff * min(period_in, period_out)
    width = math.ceil(zero_crossings * period_in / cutoff)
    taps = torch.arange(-width, width + period_in, dtype=torch.float64)
    phases = torch.arange(period_out, dtype=torch.float64)
    # integer distances, exact in float64; multiplied before dividing, so that a distance that
    # is a whole number of zero crossings gives an integral t exactly
    distance = taps[None, :] * period_out - phases[:, None] * period_in
    t = distance * cutoff / (period_in * period_out)
    zeros_of_sinc = (t == t.round()) & (t != 0)
    inside = (t.abs() < zero_crossings) & ~zeros_of_sinc
    u = (t / zero_crossings).clamp(-1.0, 1.0)
    if kaiser_beta is None:
        window = torch.cos(u * (math.pi / 2)) ** 2
    else:
        beta = torch.tensor(kaiser_beta, dtype=torch.float64)
        window = torch.i0(beta * torch.sqrt(1 - u * u)) / torch.i0(beta)
    # the cutoff below 1 widens the sinc in time and lowers its gain by the same factor
    kernel = torch.where(inside, torch.sinc(t) * window * (cutoff / period_in), 0.0)
    support: list[tuple[int, int]] = []
    for row in inside:
        index = row.nonzero().flatten()
        if index.numel() == 0:
            # only with rolloff > 1: every tap of this phase is a zero of the sinc
            support.append((0, 0))
        else:
            support.append((int(index[0]) - width, int(index[-1]) - width))
    return kernel.unsqueeze(1), support, width

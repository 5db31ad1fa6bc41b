"""Timing arithmetic: receptive field, rate and lookahead, composed across a network.

A stream's timing says which inputs each output depends on, in the steady state of an endless
stream (edges aside): output ``j`` depends on inputs ``first(j)`` to ``last(j)`` inclusive.
Indices may be negative where padding stands before the first input. Both maps are periodic:
``first(j + period_out) == first(j) + period_in``, so a finite enumeration gives exact figures
for any chain of strides, dilations and upsamplings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Timing"]

IndexMap = Callable[[int], int]


@dataclass(frozen=True)
class Timing:
    """Which inputs each output of a stream depends on.

    Attributes:
        period_in: input samples per period of the dependency pattern.
        period_out: output samples per period (``rate == period_out / period_in``).
        first: index of the first input output ``j`` depends on.
        last: index of the last input output ``j`` depends on.
    """

    period_in: int
    period_out: int
    first: IndexMap
    last: IndexMap

    def __post_init__(self) -> None:
        if self.period_in < 1 or self.period_out < 1:
            raise ValueError(
                f"Timing periods must be positive, got {self.period_in} in, {self.period_out} out"
            )

    @classmethod
    def identity(cls) -> Timing:
        """Output ``j`` depends on input ``j`` alone (element-wise layers)."""
        return cls(1, 1, _same, _same)

    @classmethod
    def window(cls, span: int, stride: int = 1, offset: int = 0) -> Timing:
        """A sliding window: output ``j`` reads inputs ``j * stride + offset`` onwards.

        Args:
            span: inputs one window covers (``dilation * (kernel_size - 1) + 1``).
            stride: inputs between successive windows. (Default: 1)
            offset: index of the first input of window 0; ``-padding`` for a padded layer.
                (Default: 0)
        """
        if span < 1 or stride < 1:
            raise ValueError(f"window span and stride must be positive, got {span}, {stride}")
        return cls(
            stride,
            1,
            lambda j: j * stride + offset,
            lambda j: j * stride + offset + span - 1,
        )

    @classmethod
    def upsampling(cls, factor: int, first: IndexMap, last: IndexMap) -> Timing:
        """``factor`` outputs per input, with the given dependency maps."""
        return cls(1, factor, first, last)

    @property
    def rate(self) -> Fraction:
        """Output samples per input sample."""
        return Fraction(self.period_out, self.period_in)

    @property
    def receptive_field(self) -> int:
        """The most input samples any one output depends on."""
        return max(self.last(j) - self.first(j) + 1 for j in range(self.period_out))

    @property
    def lookahead(self) -> Fraction:
        """How far past its own time an output reads, in input samples.

        Output ``j`` stands at input time ``j / rate``; the lookahead is the largest
        ``last(j) - j / rate``. A causal layer has lookahead 0, a centred ("same") convolution
        with kernel 5 has 2, an unpadded one has 4. A stream can emit output ``j`` only once
        input ``last(j)`` has arrived, so this is the stream's latency in input samples,
        before the rounding that block boundaries and strides add.
        """
        return max(
            Fraction(self.last(j) * self.period_out - j * self.period_in, self.period_out)
            for j in range(self.period_out)
        )

    def then(self, after: Timing) -> Timing:
        """The timing of this stream followed by ``after`` (a chain, as in Sequential)."""
        first_a, last_a, first_b, last_b = self.first, self.last, after.first, after.last
        return Timing(
            self.period_in * after.period_in,
            self.period_out * after.period_out,
            lambda j: first_a(first_b(j)),
            lambda j: last_a(last_b(j)),
        )

    @staticmethod
    def chain(timings: list[Timing]) -> Timing:
        """The timing of streams applied one after another."""
        result = Timing.identity()
        for timing in timings:
            result = result.then(timing)
        return result

    @staticmethod
    def parallel(timings: list[Timing]) -> Timing:
        """The timing of paths fed the same input and combined sample by sample.

        Raises:
            ValueError: if the paths run at different rates (they cannot be combined).
        """
        if not timings:
            raise ValueError("parallel timing needs at least one path")
        rates = {t.rate for t in timings}
        if len(rates) > 1:
            shown = ", ".join(str(r) for r in sorted(rates))
            raise ValueError(f"parallel paths must share one rate, got rates {shown}")
        period_out = math.lcm(*(t.period_out for t in timings))
        period_in = timings[0].period_in * period_out // timings[0].period_out
        firsts = [t.first for t in timings]
        lasts = [t.last for t in timings]
        return Timing(
            period_in,
            period_out,
            lambda j: min(f(j) for f in firsts),
            lambda j: max(f(j) for f in lasts),
        )

    def shifted(self, inputs: int) -> Timing:
        """The same dependencies with every input index moved by ``inputs``."""
        first, last = self.first, self.last
        return Timing(
            self.period_in, self.period_out, lambda j: first(j) + inputs, lambda j: last(j) + inputs
        )


def _same(j: int) -> int:
    return j

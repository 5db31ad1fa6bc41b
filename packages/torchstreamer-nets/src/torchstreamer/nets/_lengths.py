"""How long a stream's output would be if its input ended now.

A slice that drops the last ``k`` samples of a value (the chomp of a TCN) cannot pass a sample
on until it knows the sample is not among the last ``k``. Counting the samples it has received
is not enough: a padded convolution before it still owes its right-padding outputs, which exist
whatever comes next. The exact bound is the length the value would have if the signal ended
now, and that is the composition of the streams' ``output_length`` maps applied to the number of
samples the network has received. Streams that do not report ``output_length`` end the chain;
a slice after them holds back ``k`` samples, which is exact, only later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from torchstreamer.core import BaseStream
from torchstreamer.layers import Elementwise1dStream

__all__ = ["Chain", "LengthMap", "Received", "length_map"]

LengthMap = Callable[[int], int]


def length_map(stream: BaseStream) -> Optional[LengthMap]:
    """``stream``'s output length for an input length, or None if it does not say."""
    if isinstance(stream, Elementwise1dStream):
        return _same
    method = getattr(stream, "output_length", None)
    if method is None:
        return None
    try:
        method(64)
    except NotImplementedError:
        return None
    return method  # type: ignore[no-any-return]


def _same(length: int) -> int:
    return length


class Chain:
    """Length maps applied one after the other; picklable, unlike a lambda."""

    def __init__(self, maps: Sequence[LengthMap]) -> None:
        self.maps = tuple(m for m in maps if m is not _same)

    def __call__(self, length: int) -> int:
        for step in self.maps:
            length = step(length)
        return length

    def then(self, after: Optional[LengthMap]) -> Optional[Chain]:
        """This chain followed by ``after``; None if ``after`` is unknown."""
        return None if after is None else Chain((*self.maps, after))


class Received:
    """The length, now, of a value inside a composite stream: a chain applied to its input.

    ``owner.input_length()`` is what the composite's input would measure if the signal ended
    now; the chain maps that to the value.
    """

    def __init__(self, owner: Any, chain: Chain) -> None:
        self.owner = owner
        self.chain = chain

    def __call__(self) -> int:
        return self.chain(self.owner.input_length())


def shortest_input(maps: Sequence[Optional[LengthMap]], refuses: Sequence[bool]) -> int:
    """The shortest input a chain of layers accepts, as far as their length maps tell.

    A layer with ``refuses[k]`` raises on an input too short for one output (a convolution,
    a pool, a transposed convolution); its map gives 0 outputs there. Layers after the first
    unknown map are not considered, so the answer never claims more than is known: a signal
    shorter than this cannot reach the end of the chain without an error, so a stream may
    count on at least this many samples coming.

    Args:
        maps: each layer's length map, None where unknown.
        refuses: whether each layer refuses an input too short for one output.

    Returns:
        at least 1.
    """
    checks: list[Chain] = []
    prefix: list[LengthMap] = []
    for length_of, strict in zip(maps, refuses, strict=True):
        if length_of is None:
            break
        prefix.append(length_of)
        if strict:
            checks.append(Chain(prefix))
    if not checks:
        return 1

    def accepts(length: int) -> bool:
        return all(check(length) >= 1 for check in checks)

    # output lengths grow with the input: double, then bisect
    high = 1
    while not accepts(high):
        high *= 2
        if high > 1 << 24:
            return 1  # no length found: claim nothing
    low = high // 2  # refused (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        if accepts(middle):
            high = middle
        else:
            low = middle
    return high

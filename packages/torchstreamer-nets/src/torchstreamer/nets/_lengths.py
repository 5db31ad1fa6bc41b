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

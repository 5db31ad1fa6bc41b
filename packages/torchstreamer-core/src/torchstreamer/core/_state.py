"""A module base whose plain counters are cheap to update."""

from typing import Any

from torch import nn

__all__ = ["StateModule"]

_PLAIN = (int, bool, float, str)


class StateModule(nn.Module):
    """An ``nn.Module`` whose int, bool, float and str attributes are set directly.

    Streams update a handful of counters on every block. ``nn.Module.__setattr__`` checks each
    assignment against the module's parameters, buffers and submodules, which costs several
    times more than the assignment itself, and at small blocks that adds up to a large part of
    a stream's per-block time. Plain values can never be parameters, buffers or submodules, so
    they skip those checks; everything else goes through ``nn.Module`` as usual.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) in _PLAIN:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

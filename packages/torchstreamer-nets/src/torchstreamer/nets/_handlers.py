"""The handlers this distribution registers with the core registry (entry point)."""

from torch import nn

from torchstreamer.core import Handler

from .branches import Concat1d, Concat1dStream, Parallel1d, Parallel1dStream
from .graph import graph_stream
from .residual import Residual1d, Residual1dStream
from .sequential import Sequential1dStream

__all__ = ["handlers"]


def handlers() -> list[Handler]:
    """Every handler of torchstreamer-nets."""
    return [
        Handler(nn.Sequential, Sequential1dStream),
        Handler(Residual1d, Residual1dStream),
        Handler(Parallel1d, Parallel1dStream),
        Handler(Concat1d, Concat1dStream),
        # before the element-wise fallback (priority 0): a traced forward is checked exactly,
        # node by node; modules it cannot trace are left to the fallback's probe
        Handler(nn.Module, graph_stream, priority=1),
    ]

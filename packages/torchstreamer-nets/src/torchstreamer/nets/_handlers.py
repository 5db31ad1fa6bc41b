"""The handlers this distribution registers with the core registry (entry point)."""

from typing import Optional

from torch import nn

from torchstreamer.core import BaseStream, Edges, Handler

from .branches import Concat1d, Concat1dStream, Parallel1d, Parallel1dStream
from .graph import graph_stream
from .residual import Residual1d, Residual1dStream
from .sequential import Sequential1dStream

__all__ = ["handlers"]


class _Container:
    """The handler of a container type; declines subclasses that override ``forward``.

    A subclass of ``nn.Sequential`` (or of ``Residual1d``...) with its own ``forward`` computes
    something else than its children in a row: it goes to the graph stream, which traces it.
    """

    def __init__(self, container: type[nn.Module], stream: type[BaseStream]) -> None:
        self.container = container
        self.stream = stream

    def __call__(self, module: nn.Module, *, edges: Edges = "pad") -> Optional[BaseStream]:
        if type(module).forward is not self.container.forward:
            return None
        return self.stream(module, edges=edges)  # type: ignore[call-arg]


def handlers() -> list[Handler]:
    """Every handler of torchstreamer-nets."""
    return [
        Handler(nn.Sequential, _Container(nn.Sequential, Sequential1dStream)),
        Handler(Residual1d, _Container(Residual1d, Residual1dStream)),
        Handler(Parallel1d, _Container(Parallel1d, Parallel1dStream)),
        Handler(Concat1d, _Container(Concat1d, Concat1dStream)),
        # before the element-wise fallback (priority 0): a traced forward is checked exactly,
        # node by node; modules it cannot trace are left to the fallback's probe
        Handler(nn.Module, graph_stream, priority=1),
    ]

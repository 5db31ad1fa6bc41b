"""torchstreamer-nets: exact streams of whole networks.

``Sequential1dStream`` streams an ``nn.Sequential``; ``Residual1d``, ``Parallel1d`` and
``Concat1d`` are modules for residual connections and branches, streamed by
``Residual1dStream``, ``Parallel1dStream`` and ``Concat1dStream``; ``Graph1dStream`` streams any
module whose ``forward`` ``torch.fx`` can trace. All are registered with the core registry, so
``torchstreamer.create_stream`` picks them, and are available from the top-level package.
"""

from .branches import Concat1d, Concat1dStream, Parallel1d, Parallel1dStream
from .graph import Graph1dStream
from .residual import Residual1d, Residual1dStream
from .sequential import Sequential1dStream

__all__ = [
    "Concat1d",
    "Concat1dStream",
    "Graph1dStream",
    "Parallel1d",
    "Parallel1dStream",
    "Residual1d",
    "Residual1dStream",
    "Sequential1dStream",
]

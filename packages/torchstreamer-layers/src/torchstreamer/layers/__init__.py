"""torchstreamer-layers: exact, minimal-latency streams for 1D layers.

Every stream here is registered with the core registry, so ``torchstreamer.create_stream``
picks it for its module type, and is available from the top-level package
(``torchstreamer.Conv1dStream``).
"""

from ._window import WindowStream
from .conv import Conv1dStream
from .conv_transpose import ConvTranspose1dStream
from .elementwise import Elementwise1dStream
from .pad import Pad1dStream
from .pool import Pool1dStream
from .upsample import Upsample1dStream

__all__ = [
    "Conv1dStream",
    "ConvTranspose1dStream",
    "Elementwise1dStream",
    "Pad1dStream",
    "Pool1dStream",
    "Upsample1dStream",
    "WindowStream",
]

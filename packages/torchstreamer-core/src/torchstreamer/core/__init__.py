"""torchstreamer-core: the stream protocol, time buffers, the registry, errors and timing.

Everything here is also available from the top-level package (``torchstreamer.BaseStream``).
"""

from __future__ import annotations

from ._state import state_tensor
from .buffer import TimeBuffer
from .describe import buffered_samples, describe
from .errors import NotStreamableError, StreamError
from .registry import (
    ENTRY_POINT_GROUP,
    Edges,
    Handler,
    StreamFactory,
    check_edges,
    create_stream,
    handled_type,
    register_streamer,
    unregister_streamer,
)
from .stream import BaseStream
from .timing import Timing

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseStream",
    "Edges",
    "Handler",
    "NotStreamableError",
    "StreamError",
    "StreamFactory",
    "TimeBuffer",
    "Timing",
    "buffered_samples",
    "check_edges",
    "create_stream",
    "describe",
    "handled_type",
    "register_streamer",
    "state_tensor",
    "unregister_streamer",
]

"""What composite streams know about their children's channels and state."""

from __future__ import annotations

from torch import nn
from torch.nn.modules import activation

from torchstreamer.core import BaseStream
from torchstreamer.layers import Elementwise1dStream

__all__ = ["keeps_channels", "legacy_stream", "stateless"]

# activations, dropout and the identity return as many channels as they are given
_CHANNEL_KEEPING = (
    *tuple(
        cls
        for cls in vars(activation).values()
        if isinstance(cls, type)
        and issubclass(cls, nn.Module)
        and cls.__module__ == activation.__name__
        and cls not in (nn.GLU, nn.MultiheadAttention)
    ),
    nn.Dropout,
    nn.AlphaDropout,
    nn.Identity,
)


def stateless(stream: BaseStream) -> bool:
    """Whether ``stream`` holds nothing between blocks (an element-wise layer)."""
    return isinstance(stream, Elementwise1dStream)


def keeps_channels(stream: BaseStream) -> bool:
    """Whether ``stream`` is element-wise over a module that keeps the channel count."""
    return stateless(stream) and isinstance(getattr(stream, "module", None), _CHANNEL_KEEPING)


def legacy_stream(stream: BaseStream) -> bool:
    """Whether ``stream`` overrides ``forward`` instead of ``step`` (torch-streamer 0.0.2).

    Such streams were never given empty blocks: 0.0.2 stopped a network at the first stage
    that returned nothing.
    """
    cls = type(stream)
    return cls.step is BaseStream.step and cls.forward is not BaseStream.forward

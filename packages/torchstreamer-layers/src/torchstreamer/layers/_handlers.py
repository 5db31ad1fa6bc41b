"""The handlers this distribution registers with the core registry (entry point)."""

from torch import nn

from torchstreamer.core import Handler

from .conv import Conv1dStream
from .conv_transpose import ConvTranspose1dStream
from .elementwise import elementwise_handlers
from .pad import Pad1dStream
from .pool import Pool1dStream
from .upsample import Upsample1dStream

__all__ = ["handlers"]


def handlers() -> list[Handler]:
    """Every layer handler of torchstreamer-layers."""
    return [
        Handler(nn.Conv1d, Conv1dStream),
        Handler(nn.ConvTranspose1d, ConvTranspose1dStream),
        Handler(nn.AvgPool1d, Pool1dStream),
        Handler(nn.MaxPool1d, Pool1dStream),
        Handler(nn.LPPool1d, Pool1dStream),
        Handler(nn.ConstantPad1d, Pad1dStream),
        Handler(nn.ZeroPad1d, Pad1dStream),
        Handler(nn.ReflectionPad1d, Pad1dStream),
        Handler(nn.ReplicationPad1d, Pad1dStream),
        Handler(nn.CircularPad1d, Pad1dStream),
        Handler(nn.Upsample, Upsample1dStream),
        *elementwise_handlers(),
    ]

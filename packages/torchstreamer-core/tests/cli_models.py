"""Models that the command-line tests name as MODEL (``cli_models:gain``).

Imported by the command itself, from this folder, which the tests put on ``sys.path``. The
streams here are registered by the tests that use them, never on import.
"""

from typing import Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, Timing

NOT_A_FACTORY = 42


class Gain(nn.Module):
    """Multiplies by a learnable scale: element-wise, any number of channels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x


class GainStream(BaseStream):
    """An exact stream of :class:`Gain`."""

    def __init__(self, module: Gain) -> None:
        super().__init__()
        self.module = module

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        return self.module(x) if x.size(-1) > 0 else None

    def timing(self) -> Timing:
        return Timing.identity()


class DroppingGainStream(GainStream):
    """A wrong stream of :class:`Gain`: it loses sample 5 of every stream."""

    DROPPED = 5

    def __init__(self, module: Gain) -> None:
        super().__init__(module)
        self.seen = 0

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        start, self.seen = self.seen, self.seen + x.size(-1)
        y = self.module(x)
        if start <= self.DROPPED < self.seen:
            at = self.DROPPED - start
            y = torch.cat([y[..., :at], y[..., at + 1 :]], dim=-1)
        if final:
            self.reset_state()
        return y if y.size(-1) > 0 else None

    def reset_state(self) -> None:
        self.seen = 0


def gain() -> Gain:
    return Gain()


def fir() -> nn.Conv1d:
    """An unpadded convolution, for the hand-written stream of the tests' conftest."""
    return nn.Conv1d(2, 3, 4)


def padded() -> nn.Sequential:
    """Padding, a transposed convolution and a ceil-mode pool: what edges="valid" ignores."""
    return nn.Sequential(
        nn.Conv1d(1, 2, 5, padding=2),
        nn.ReLU(),
        nn.ConvTranspose1d(2, 2, 4, stride=2, padding=1),
        nn.AvgPool1d(3, padding=1, ceil_mode=True),
    )


def not_a_module() -> list[int]:
    return [1, 2, 3]


def broken() -> nn.Module:
    raise RuntimeError("the weights are missing")


def group_norm() -> nn.Sequential:
    """Normalisation over time: refused by every handler (and by core alone: no handler)."""
    return nn.Sequential(nn.Conv1d(1, 4, 3), nn.GroupNorm(2, 4))

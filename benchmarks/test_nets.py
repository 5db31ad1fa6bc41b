"""Whole networks, per block size, against offline inference and torch-streamer 0.0.2.

The seed's Sequential and ResNet and a dilated TCN are unpadded, so 0.0.2 computes the same
outputs; the HiFi-GAN-like generator (padded, residual, upsampling) is beyond 0.0.2 and is
measured against offline only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import torch
from streaming import BLOCKS, LENGTH, compare_streaming
from torch import nn

import torchstreamer as pts
from torchstreamer.core.cli import seed_sequential

if TYPE_CHECKING:
    from benchmarks.conftest import Timer


def seed_resnet(residual: Callable[[nn.Module], nn.Module]) -> nn.Sequential:
    """The ResNet of the original README, with the given residual wrapper."""
    return nn.Sequential(
        nn.Conv1d(1, 128, 1),
        *[
            residual(
                nn.Sequential(nn.GELU(), nn.Conv1d(128, 256, 3), nn.GELU(), nn.Conv1d(256, 128, 1))
            )
            for _ in range(3)
        ],
        nn.Conv1d(128, 1, 1),
    )


def dilated_tcn() -> nn.Sequential:
    """Eight unpadded dilated convolutions (dilation 1 to 128) with GELUs between."""
    layers: list[nn.Module] = [nn.Conv1d(1, 64, 1)]
    for level in range(8):
        layers += [nn.Conv1d(64, 64, 3, dilation=2**level), nn.GELU()]
    return nn.Sequential(*layers)


class HifiResBlock(nn.Module):
    """HiFi-GAN's residual block: dilated 'same' convolutions with skip additions."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding="same") for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(nn.functional.leaky_relu(x, 0.1))
        return x


def hifigan_like() -> nn.Sequential:
    """A small HiFi-GAN-like generator: 80 mel channels up to audio, x16 upsampling."""
    return nn.Sequential(
        nn.Conv1d(80, 128, 7, padding=3),
        nn.LeakyReLU(0.1),
        nn.ConvTranspose1d(128, 64, 16, stride=8, padding=4),
        HifiResBlock(64, 3, (1, 3, 5)),
        nn.LeakyReLU(0.1),
        nn.ConvTranspose1d(64, 32, 4, stride=2, padding=1),
        HifiResBlock(32, 3, (1, 3, 5)),
        nn.LeakyReLU(0.1),
        nn.Conv1d(32, 1, 7, padding=3),
        nn.Tanh(),
    )


NETS = ["seed sequential", "seed resnet", "dilated tcn", "hifigan-like"]


def build(name: str, baseline: ModuleType | None) -> tuple[nn.Module, nn.Module | None, int]:
    """The network, the same network for 0.0.2 (or None) and its input channels."""
    if name == "seed sequential":
        net = seed_sequential()
        return net, net, 1
    if name == "seed resnet":
        net = seed_resnet(pts.Residual1d)
        theirs = None
        if baseline is not None:
            # the same layers, wrapped in 0.0.2's own Residual1d so its registry finds them
            theirs = nn.Sequential(
                *(baseline.Residual1d(m.net) if isinstance(m, pts.Residual1d) else m for m in net)
            )
        return net, theirs, 1
    if name == "dilated tcn":
        net = dilated_tcn()
        return net, net, 1
    return hifigan_like(), None, 80


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("name", NETS)
def test_network(
    timer: Timer, device: torch.device, optional_baseline: ModuleType | None, name: str, block: int
) -> None:
    torch.manual_seed(0)
    net, theirs, channels = build(name, optional_baseline)
    net = net.to(device).eval()
    # a vocoder's input runs at the frame rate: fewer input samples for the same output
    length = LENGTH // 16 if name == "hifigan-like" else LENGTH
    if name == "hifigan-like" and block > length:
        pytest.skip("block longer than the signal")
    x = torch.randn(channels, length, device=device)
    factory = None
    if optional_baseline is not None and theirs is not None:
        theirs = theirs.to(device).eval()
        sequential = optional_baseline.Sequential1dStream

        def factory() -> nn.Module:
            return sequential(theirs)  # type: ignore[no-any-return]

    compare_streaming(
        timer,
        net,
        x,
        block,
        ours=lambda: pts.Sequential1dStream(net),
        baseline=factory,
        name=name,
        # its HiFi-GAN residual blocks stream as traced graphs, which TorchScript cannot compile
        scripted=name != "hifigan-like",
    )

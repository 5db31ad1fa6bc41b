"""Network streams under torch.jit.script (Sequential, residual, branches) and torch.compile."""

from typing import cast

import pytest
import torch
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import assert_streams_exactly


def _resnet() -> nn.Module:
    blocks = [
        pts.Residual1d(nn.GELU(), nn.Conv1d(8, 16, 3), nn.GELU(), nn.Conv1d(16, 8, 1))
        for _ in range(2)
    ]
    return nn.Sequential(nn.Conv1d(1, 8, 1), *blocks, nn.Conv1d(8, 1, 1)).eval()


def _mixed() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 4, 4, stride=2, padding=1), nn.ReLU(), nn.AvgPool1d(3, 1, 1),
        pts.Parallel1d(nn.Conv1d(4, 4, 3, padding=1), nn.Conv1d(4, 4, 5), reduce="mean"),
        pts.Concat1d(nn.Identity(), nn.Conv1d(4, 2, 3)),
        nn.ConvTranspose1d(6, 1, 4, stride=2, padding=1), nn.Upsample(scale_factor=2),
    ).eval()  # fmt: skip


@pytest.mark.usefixtures("no_script_warning")
@pytest.mark.parametrize("network", [_resnet, _mixed])
def test_scripted_streams_are_exact(network) -> None:  # type: ignore[no-untyped-def]
    net = network()
    # a scripted stream is called like the stream it was made from
    scripted = cast(pts.BaseStream, torch.jit.script(pts.create_stream(net)))
    assert_streams_exactly(net, torch.randn(2, 1, 40), stream=scripted, partitions=3)
    assert_streams_exactly(net, torch.randn(1, 1, 33), stream=scripted, partitions=2)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=2)
        self.gate = nn.Conv1d(2, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.gate(x).chunk(2, dim=1)
        y: Tensor = x + torch.tanh(self.conv(x)[..., :-2]) * torch.sigmoid(a) * b
        return y


@pytest.mark.parametrize("network", [_resnet, _mixed, Block])
def test_compiled_streams_are_exact(network) -> None:  # type: ignore[no-untyped-def]
    torch._dynamo.reset()
    net = network()
    x = torch.randn(2, 1 if network is not Block else 2, 30)
    # the eager backend checks what dynamo captures without paying for code generation
    compiled = cast(pts.BaseStream, torch.compile(pts.create_stream(net), backend="eager"))
    assert_streams_exactly(net, x, stream=compiled, partitions=1)

"""Streams that users register for their own modules, inside every kind of network stream."""

from collections.abc import Iterator
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly


class Advance(nn.Module):
    """Moves the signal ``n`` samples earlier, zeros at the end: ``y[t] = x[t + n]``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, (0, self.n))[..., self.n :]


class AdvanceStream(pts.BaseStream):
    """A user's stream for ``Advance``, written with the step protocol and a TimeBuffer."""

    def __init__(self, module: Advance) -> None:
        super().__init__()
        self.n = module.n
        self.buffer = pts.TimeBuffer()
        self.received = 0
        self.reset_state()

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        self.received += x.shape[-1]
        # the buffer skips the first n samples; nothing is ever held
        y = self.buffer.extend(x)
        self.buffer.advance(y, y.shape[-1])
        if final:
            zeros = x.new_zeros(x.shape[0], x.shape[1], min(self.n, self.received))
            y = torch.cat([y, zeros], dim=-1)
            self.reset_state()
        return y if y.shape[-1] else None

    def reset_state(self) -> None:
        self.buffer.clear()
        self.buffer.advance(torch.empty(0), self.n)
        self.received = 0

    def timing(self) -> pts.Timing:
        return pts.Timing.window(1, 1, self.n)


@pytest.fixture
def advance_handler() -> Iterator[None]:
    pts.register_streamer(Advance, AdvanceStream)
    yield
    pts.unregister_streamer(Advance)


class Echo(nn.Module):
    """A module without a handler that uses a registered one inside: streamed as a graph."""

    def __init__(self) -> None:
        super().__init__()
        self.advance = Advance(3)
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = x + 0.5 * self.advance(self.conv(x))
        return y


@pytest.mark.usefixtures("advance_handler")
def test_registered_stream_passes_the_public_checks() -> None:
    assert_streams_exactly(Advance(4), torch.randn(2, 3, 20))
    assert_minimal_latency(Advance(4), torch.randn(3, 20))


@pytest.mark.usefixtures("advance_handler")
@pytest.mark.parametrize(
    "network",
    [
        lambda: nn.Sequential(nn.Conv1d(2, 2, 3, padding=1), Advance(2), nn.GELU()),
        lambda: pts.Residual1d(nn.Sequential(Advance(2), nn.Conv1d(2, 2, 3))),
        lambda: pts.Parallel1d(Advance(1), nn.Conv1d(2, 2, 5, padding=2)),
        Echo,
    ],
)
def test_registered_stream_is_used_inside_networks(network) -> None:  # type: ignore[no-untyped-def]
    net = network().double()
    stream = pts.create_stream(net)
    assert any(isinstance(m, AdvanceStream) for m in stream.modules())
    x = torch.randn(2, 2, 24, dtype=torch.float64)
    assert_streams_exactly(net, x, stream=stream)
    assert_minimal_latency(net, x[:1], stream=stream)


def test_a_handler_registered_for_a_subclass_wins_inside_a_graph() -> None:
    class MyConv(nn.Conv1d):
        pass

    class Custom(pts.BaseStream):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

        def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
            return self.module(x) if x.shape[-1] else None

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = MyConv(1, 1, 1)

        def forward(self, x: Tensor) -> Tensor:
            return torch.tanh(self.conv(x))

    pts.register_streamer(MyConv, Custom)
    try:
        stream = pts.create_stream(Net())
        assert isinstance(stream, pts.Graph1dStream)
        assert any(isinstance(m, Custom) for m in stream.modules())
    finally:
        pts.unregister_streamer(MyConv)

"""Graph1dStream: modules without a handler, streamed from their traced forward()."""

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly


class Chomp1d(nn.Module):
    """As in the TCN of Bai, Kolter and Koltun (2018): drops the last samples."""

    def __init__(self, chomp_size: int) -> None:
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, : -self.chomp_size].contiguous()


class TemporalBlock(nn.Module):
    def __init__(self, n_in: int, n_out: int, kernel: int, dilation: int) -> None:
        super().__init__()
        padding = (kernel - 1) * dilation
        conv1 = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(n_in, n_out, kernel, padding=padding, dilation=dilation)
        )
        conv2 = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(n_out, n_out, kernel, padding=padding, dilation=dilation)
        )
        self.net = nn.Sequential(
            conv1, Chomp1d(padding), nn.ReLU(), nn.Dropout(0.2),
            conv2, Chomp1d(padding), nn.ReLU(), nn.Dropout(0.2),
        )  # fmt: skip
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None
        self.relu: nn.Module = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        y: Tensor = self.relu(out + res)
        return y


def _tcn(channels: list[int], kernel: int = 3) -> nn.Sequential:
    blocks = [TemporalBlock(([2, *channels])[i], c, kernel, 2**i) for i, c in enumerate(channels)]
    return nn.Sequential(*blocks).eval()


def test_tcn_streams_exactly_and_causally(device: torch.device) -> None:
    tcn = _tcn([4, 4, 3]).double().to(device)
    x = torch.randn(2, 2, 40, dtype=torch.float64, device=device)
    assert_streams_exactly(tcn, x, partitions=4)
    stream = pts.create_stream(tcn)
    # the chomps make every convolution causal: no output waits for a later sample
    assert stream.lookahead == 0
    assert stream.receptive_field == 1 + 2 * 2 * (1 + 2 + 4)
    # ReLU zeros would make outputs look determined by chance: leaky ones for this check
    for block in tcn:
        assert isinstance(block, TemporalBlock)
        block.relu = block.net[2] = block.net[6] = nn.LeakyReLU(0.1)
    assert_minimal_latency(tcn, x[:1, :, :24])


class Mixer(nn.Module):
    """Paths of different lookahead, joined by sums, products and concatenations."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv1d(3, 4, 5, padding=2)
        self.narrow = nn.Conv1d(3, 4, 3)
        self.merge = nn.Conv1d(8, 3, 1)
        self.scale = nn.Parameter(torch.rand(1, 4, 1) + 0.5)

    def forward(self, x: Tensor) -> Tensor:
        a = F.gelu(self.wide(x))
        b = F.pad(self.narrow(x), (1, 1), mode="reflect") * self.scale
        y = torch.cat([a + b, a * b], dim=1)
        y = self.merge(y)[..., 1:-1]
        u, v, w = y.chunk(3, dim=1)
        head = torch.cat([u.sigmoid() * v, x[:, :2, 1:-1]], dim=-2)
        head += x[:, :1, 2:]
        tail = F.pad(x[:, 1:2], (0, 2), mode="replicate")[..., 4:]
        out: Tensor = head - w.softmax(dim=1) + tail
        return out


def test_paths_of_different_lookahead_stream_exactly(device: torch.device) -> None:
    mixer = Mixer().double().to(device)
    x = torch.randn(2, 3, 30, dtype=torch.float64, device=device)
    stream = pts.create_stream(mixer)
    assert isinstance(stream, pts.Graph1dStream)
    assert stream.in_channels == 3
    assert_streams_exactly(mixer, x, stream=stream)
    assert_minimal_latency(mixer, x[:1], stream=stream)
    assert_streams_exactly(mixer.float(), x.float(), partitions=2)


# a random program: each step makes a new value from earlier ones; lengths are tracked so that
# additions crop the longer operand explicitly (with a slice), as users must offline
@st.composite
def _program(draw: Any) -> list[tuple[Any, ...]]:
    steps: list[tuple[Any, ...]] = []
    shortening = [0]  # of each value, in samples, relative to the input
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "conv", "act", "chomp", "pad", "add", "cat"]))
        source = draw(st.integers(0, len(shortening) - 1))
        if kind == "conv":
            kernel = draw(st.integers(1, 4))
            padding = draw(st.integers(0, kernel))
            steps.append(("conv", source, kernel, padding))
            shortening.append(shortening[source] + kernel - 1 - 2 * padding)
        elif kind == "act":
            steps.append(("act", source, draw(st.sampled_from(["gelu", "tanh", "relu", "affine"]))))
            shortening.append(shortening[source])
        elif kind == "chomp":
            start, stop = draw(st.integers(0, 2)), draw(st.integers(1, 3))
            steps.append(("chomp", source, start, stop))
            shortening.append(shortening[source] + start + stop)
        elif kind == "pad":
            left, right = draw(st.integers(0, 2)), draw(st.integers(0, 2))
            steps.append(
                ("pad", source, left, right, draw(st.sampled_from(["constant", "replicate"])))
            )
            shortening.append(shortening[source] - left - right)
        else:
            other = draw(st.integers(0, len(shortening) - 1))
            extra = shortening[other] - shortening[source]  # how much longer source is
            longer, shorter = (source, other) if extra >= 0 else (other, source)
            cut = draw(st.integers(0, abs(extra)))
            steps.append((kind, longer, shorter, cut, abs(extra) - cut))
            shortening.append(max(shortening[source], shortening[other]))
    return steps


class Program(nn.Module):
    """Runs a random program; fx unrolls the loop, so each step becomes nodes of the graph."""

    def __init__(self, steps: list[tuple[Any, ...]], channels: int) -> None:
        super().__init__()
        self.steps = steps
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, s[2], padding=s[3])
            if s[0] == "conv"
            else nn.Conv1d(2 * channels, channels, 1)
            for s in steps
            if s[0] in ("conv", "cat")
        )
        self.offset = nn.Parameter(torch.randn(channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        values = [x]
        convs = iter(self.convs)
        for step in self.steps:
            kind, source = step[0], values[step[1]]
            if kind == "conv":
                values.append(next(convs)(source))
            elif kind == "act" and step[2] == "affine":
                values.append(source * 0.5 + self.offset)
            elif kind == "act":
                values.append(
                    F.gelu(source) if step[2] == "gelu" else getattr(torch, step[2])(source)
                )
            elif kind == "chomp":
                values.append(source[..., step[2] : -step[3]])
            elif kind == "pad":
                values.append(F.pad(source, (step[2], step[3]), mode=step[4]))
            else:
                cropped = source[..., step[3] : -step[4] or None]
                other = values[step[2]]
                joined = (
                    cropped + other
                    if kind == "add"
                    else next(convs)(torch.cat([cropped, other], 1))
                )
                values.append(joined)
        return values[-1]


@given(steps=_program(), length=st.integers(14, 36), channels=st.sampled_from([1, 2]))
def test_random_graphs_stream_exactly(offline, steps, length, channels) -> None:  # type: ignore[no-untyped-def]
    module = Program(steps, channels).double()
    x = torch.randn(2, channels, length, dtype=torch.float64)
    expected = offline(module, x)
    assume(expected is not None)
    assert_streams_exactly(module, x, expected=expected, partitions=4, seed=length)


class LengthCrop(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x[..., : x.shape[-1] - 2]


class Flip(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flip(-1) * 2


class TimeMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x - x.mean(-1, keepdim=True)


class TimeCat(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, x], dim=-1)


class Broadcast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ramp = nn.Parameter(torch.linspace(0, 1, 16))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.ramp


class SharedInPlace(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        y = x * 2
        z = y.relu_()
        return y + z


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            Flip(),
            r"node flip \(\.flip\(\)\) of Flip\.forward at test_graph\.py:\d+: `return x\.flip",
        ),
        (TimeMean(), r"node mean .* works along dimension -1, not along channels"),
        (TimeCat(), r"node cat .* works along dimension -1"),
        (Broadcast(), r"node mul .* broadcasts ramp along time"),
        (
            SharedInPlace(),
            r"node relu_ .* changes a value in place that other operations also read",
        ),
        (
            LengthCrop(),
            r"node getattr\w* \(getattr\) of LengthCrop\.forward at test_graph\.py:\d+: "
            r"`return x\[\.\.\., : x\.shape.* reads the shape",
        ),
    ],
)
def test_unstreamable_nodes_are_refused_when_built(module: nn.Module, message: str) -> None:
    with pytest.raises(pts.NotStreamableError, match=message) as caught:
        pts.create_stream(module)
    assert f"register_streamer({type(module).__name__}, factory)" in str(caught.value)


def test_refusal_inside_a_network_names_the_path() -> None:
    net = nn.Sequential(nn.Conv1d(1, 1, 1), nn.Sequential(nn.ReLU(), Flip()))
    with pytest.raises(pts.NotStreamableError, match=r"^1\.1 \(Flip\): cannot stream node flip"):
        pts.create_stream(net)


class Wobbly(nn.Module):
    """Element-wise, but with Python control flow on values: fx cannot trace it."""

    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if bool(x.sum() > 0) else x * 3


class Cumulative(nn.Module):
    """Not element-wise, and not traceable: the probing fallback must refuse it."""

    def forward(self, x: Tensor) -> Tensor:
        return x.cumsum(-1) if x.dim() == 3 else x


def test_untraceable_modules_are_left_to_the_probing_fallback() -> None:
    stream = pts.create_stream(Wobbly())
    assert isinstance(stream, pts.Elementwise1dStream)
    stream = pts.create_stream(Cumulative())
    with pytest.raises(pts.NotStreamableError, match="not element-wise"):
        stream(torch.ones(1, 30))


class Film(nn.Module):
    """A submodule called with two signals: traced into, not streamed as a leaf."""

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        return x * torch.sigmoid(gate)


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.film = Film()
        self.out = nn.Conv1d(2, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        y: Tensor = self.out(self.film(a, b)) + self.out(x)  # self.out is called twice
        return y


def test_nested_custom_modules_and_shared_weights() -> None:
    gate = Gate().double()
    x = torch.randn(3, 2, 25, dtype=torch.float64)
    assert_streams_exactly(gate, x)
    assert_minimal_latency(gate, x[:1])
    stream = pts.create_stream(gate)
    with torch.no_grad():
        gate.out.weight.mul_(-1)  # streams share the module's weights
    assert_streams_exactly(gate, x, stream=stream, partitions=1)


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(2, 1))
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x: Tensor, gain: float = 2.0) -> Tensor:
        y: Tensor = self.conv(x) * self.log_scale.exp() * gain
        return y


def test_parameter_expressions_follow_weight_changes_and_defaults_are_fixed() -> None:
    module = Scaled()
    stream = pts.create_stream(module)
    x = torch.randn(2, 20)
    with torch.no_grad():
        module.log_scale.fill_(0.3)
    assert_streams_exactly(module, x, stream=stream, partitions=1)


def test_graph_without_a_signal_output_is_refused() -> None:
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.value = nn.Parameter(torch.ones(1, 1, 1))

        def forward(self, x: Tensor) -> Tensor:
            return self.value * 2

    with pytest.raises(
        pts.NotStreamableError, match="must return one tensor computed from its input"
    ):
        pts.Graph1dStream(Constant())


def test_describe_lists_the_streams_of_the_graph() -> None:
    table = pts.describe(pts.create_stream(Mixer()))
    assert "Graph1dStream(Mixer)" in table
    assert "Conv1dStream" in table
    assert "TimeSlice1dStream" in table


class Weighted(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tensor([[0.5], [2.0]])


def test_constants_made_in_forward_follow_the_stream_to_another_dtype() -> None:
    module = Weighted()
    stream = pts.create_stream(module).double()
    x = torch.randn(2, 9, dtype=torch.float64)
    y = stream(x, final=True)
    assert y is not None
    assert torch.equal(y, x * torch.tensor([[0.5], [2.0]], dtype=torch.float64))


class Sliced(nn.Module):
    def __init__(self, index: slice) -> None:
        super().__init__()
        self.index = index
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.conv(x)[..., self.index] * 2
        return y


@pytest.mark.parametrize(
    "index",
    [
        slice(3, None),
        slice(None, 5),
        slice(2, -3),
        slice(None, None, 2),
        slice(1, None, 3),
        slice(2, 9, 2),
        slice(-4, None),
        slice(-6, -2),
        slice(1, 0),
    ],
)
def test_constant_time_slices(index: slice) -> None:
    module = Sliced(index).double()
    x = torch.randn(2, 2, 20, dtype=torch.float64)
    if module(x).shape[-1] == 0:
        stream = pts.create_stream(module)
        assert all(stream(x[..., i : i + 3], final=i + 3 >= 20) is None for i in range(0, 20, 3))
        return
    assert_streams_exactly(module, x)
    # (a stop from the end drops samples that would be missing if the signal ended now: the
    # checker, which only continues the signal, would count them as determined)
    if (index.start or 0) >= 0 and (index.stop or 0) >= 0:
        assert_minimal_latency(module, x[:1])


def test_a_slice_from_the_end_to_a_fixed_stop_is_refused() -> None:
    with pytest.raises(pts.NotStreamableError, match=r"counts from the end of the signal"):
        pts.create_stream(Sliced(slice(-5, 3)))

"""Elementwise1dStream and the element-wise handlers against the modules' own offline output."""

import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.layers import elementwise
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly


def eval_batch_norm() -> nn.Module:
    norm = nn.BatchNorm1d(3)
    assert norm.running_mean is not None
    assert norm.running_var is not None
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2)
    return norm.eval()


# modules whose channel axis is dim 1, which is time in a [C, T] tensor
CHANNEL_AXIS = (nn.GLU, nn.Softmax, nn.BatchNorm1d, nn.PReLU)

KNOWN: list[Callable[[], nn.Module]] = [
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    lambda: nn.LeakyReLU(0.2),
    lambda: nn.PReLU(3, 0.1),
    lambda: nn.RReLU().eval(),
    nn.ELU,
    nn.CELU,
    nn.SELU,
    lambda: nn.GELU("tanh"),
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    lambda: nn.Softplus(2.0),
    nn.Softsign,
    nn.LogSigmoid,
    lambda: nn.Threshold(0.1, -1.0),
    lambda: nn.GLU(dim=1),
    lambda: nn.Softmax(dim=1),
    lambda: nn.LogSoftmax(dim=-2),
    lambda: nn.Softmin(dim=-2),
    lambda: nn.Dropout().eval(),
    lambda: nn.Dropout1d().eval(),
    eval_batch_norm,
    lambda: nn.InstanceNorm1d(3, track_running_stats=True).eval(),
]


class Snake(nn.Module):
    """An element-wise activation with a parameter per channel, registered nowhere."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.linspace(0.5, 2.0, channels).view(channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.sin(self.alpha * x) ** 2 / self.alpha


class Lambda(nn.Module):
    """An unregistered module computing ``fn(x)``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.fn(x)


TIME_MIXING: list[Callable[[Tensor], Tensor]] = [
    lambda x: x.cumsum(-1),
    lambda x: x.flip(-1),
    lambda x: x - x.mean(-1, keepdim=True),
    lambda x: F.avg_pool1d(x, 3, 1, 1),
    lambda x: x * x.size(-1),
    lambda x: torch.roll(x, 1, -1),
]


@pytest.mark.parametrize("make", KNOWN)
def test_known_modules_stream_exactly(make: Callable[[], nn.Module]) -> None:
    module = make().double()
    stream = pts.create_stream(module)
    assert isinstance(stream, pts.Elementwise1dStream)
    assert not stream.unverified
    x = torch.randn(2, 4 if isinstance(module, nn.GLU) else 3, 17, dtype=torch.float64)
    if stream.in_channels != -1:
        x = x[:, : stream.in_channels]
    assert_streams_exactly(module, x, stream=stream, partitions=2)
    if not isinstance(module, CHANNEL_AXIS):
        # [C, T] blocks reach the module as [1, C, T]; these modules read [C, T] otherwise
        assert_streams_exactly(module, x[0], stream=stream, partitions=1)


@given(st.sampled_from(KNOWN), st.sampled_from(["float32", "float64"]), st.integers(0, 2**16))
def test_random_partitions(make: Callable[[], nn.Module], dtype: str, seed: int) -> None:
    module = make().to(getattr(torch, dtype))
    x = torch.randn(4, 4, 1 + seed % 40, generator=torch.Generator().manual_seed(seed))
    x = x.to(getattr(torch, dtype))
    if isinstance(module, (nn.BatchNorm1d, nn.InstanceNorm1d, nn.PReLU)):
        x = x[:, :3]
    assert_streams_exactly(module, x, partitions=3, seed=seed)


def test_timing_and_latency() -> None:
    stream = pts.create_stream(nn.GELU())
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (1, Fraction(1), Fraction(0))
    assert_minimal_latency(nn.Tanh(), torch.randn(2, 12))


def test_channels_are_checked_where_known() -> None:
    assert pts.create_stream(eval_batch_norm()).in_channels == 3
    assert pts.create_stream(nn.PReLU(5)).in_channels == 5
    assert pts.create_stream(nn.PReLU()).in_channels == -1
    with pytest.raises(pts.StreamError, match=r"expected 3 input channels \(BatchNorm1d"):
        pts.create_stream(eval_batch_norm())(torch.randn(4, 10))


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (nn.BatchNorm1d(3), "training mode"),
        (nn.BatchNorm1d(3, track_running_stats=False).eval(), "no running statistics"),
        (nn.InstanceNorm1d(3).eval(), "no running statistics"),
        (nn.InstanceNorm1d(3, track_running_stats=True), "training mode"),
        (nn.GroupNorm(1, 3), "statistics over time"),
        (nn.LayerNorm(16), "statistics over time"),
        (nn.RMSNorm(16), "statistics over time"),
        (nn.AdaptiveAvgPool1d(4), "pools the whole signal"),
        (nn.AdaptiveMaxPool1d(1), "pools the whole signal"),
        (nn.LSTM(3, 3), "recurrent"),
        (nn.GRU(3, 3, batch_first=True), "recurrent"),
        (nn.RNN(3, 3), "recurrent"),
        (nn.MultiheadAttention(4, 1), "attends"),
        (nn.TransformerEncoderLayer(4, 1), "attends"),
        (nn.Linear(16, 16), "last dimension"),
        (nn.Softmax(dim=-1), "dim=-1"),
        (nn.LogSoftmax(dim=0), "dim=0"),
        (nn.Softmax(), "dim=None"),
        (nn.GLU(), "dim=-1"),
        (nn.Dropout1d(), "whole channels"),
    ],
)
def test_time_mixing_modules_are_refused_when_built(module: nn.Module, reason: str) -> None:
    name = type(module).__name__
    message = rf"^{name} .*{reason}.*register_streamer\({name}, factory\)\.$"
    with pytest.raises(pts.NotStreamableError, match=message):
        pts.create_stream(module)
    # an explicit stream refuses them too
    with pytest.raises(pts.NotStreamableError, match=reason):
        pts.Elementwise1dStream(module)


def test_explicit_stream_rejects_length_change() -> None:
    stream = pts.Elementwise1dStream(Lambda(lambda x: x[..., ::2]))
    with pytest.raises(RuntimeError, match=r"^invalid_elementwise_output: .*\[1, 2, 6\] into"):
        stream(torch.randn(2, 6))


def test_empty_blocks_skip_the_module() -> None:
    module = Lambda(torch.tanh)
    stream = pts.Elementwise1dStream(module)
    assert stream(torch.randn(2, 0)) is None
    assert stream(torch.randn(2, 0), final=True) is None
    assert module.calls == 0


def test_unregistered_elementwise_module_is_probed_then_streamed() -> None:
    snake = Snake(3).double()
    stream = elementwise._probing_stream(snake)
    assert stream.unverified
    assert_streams_exactly(snake, torch.randn(2, 3, 20, dtype=torch.float64), stream=stream)
    assert not stream.unverified


def test_torch_layer_without_handler_is_probed() -> None:
    # torch's own layers reach the fallback whatever else is installed
    norm = nn.LocalResponseNorm(3).double()
    stream = pts.create_stream(norm)
    assert isinstance(stream, pts.Elementwise1dStream)
    assert stream.unverified
    assert_streams_exactly(norm, torch.randn(2, 5, 20, dtype=torch.float64), stream=stream)
    flatten = pts.create_stream(nn.Flatten())
    with pytest.raises(pts.NotStreamableError, match=r"^Flatten .*\[2, 5, 24\] into \[2, 120\]"):
        flatten(torch.randn(2, 5, 3))


@pytest.mark.parametrize("fn", TIME_MIXING)
@pytest.mark.parametrize("first", [1, 5])
def test_unregistered_time_mixing_module_is_refused(
    fn: Callable[[Tensor], Tensor], first: int
) -> None:
    stream = elementwise._probing_stream(Lambda(fn))
    assert stream(torch.zeros(2, 0)) is None
    # silence would not reveal the mixing: the probe does not rely on the caller's samples
    for final in (False, True):
        with pytest.raises(pts.NotStreamableError, match=r"^Lambda .*register_streamer\(Lambda"):
            stream(torch.zeros(2, first), final=final)
    assert stream.unverified


def test_unregistered_module_changing_length_is_refused() -> None:
    stream = elementwise._probing_stream(Lambda(lambda x: x[..., 1:]))
    with pytest.raises(pts.NotStreamableError, match="length"):
        stream(torch.randn(1, 4))


def test_unregistered_random_module_is_refused_with_a_hint() -> None:
    stream = elementwise._probing_stream(Lambda(lambda x: x + torch.randn_like(x)))
    with pytest.raises(pts.NotStreamableError, match=r"\.eval\(\)"):
        stream(torch.randn(1, 4))


def test_probe_failure_of_the_module_is_reported() -> None:
    conv = nn.Conv2d(3, 3, 1)  # wants 4D input
    with pytest.raises(pts.NotStreamableError, match="Conv2d failed on a probe block"):
        pts.create_stream(conv)(torch.randn(3, 8))


def test_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pts.NotStreamableError, match="ModuleList is a container"):
        pts.create_stream(nn.ModuleList([nn.ReLU()]))
    # the fallback sees a Sequential only when no handler of torchstreamer-nets took it
    monkeypatch.setattr(elementwise, "_nets_installed", lambda: False)
    with pytest.raises(pts.NotStreamableError, match="pip install torchstreamer-nets"):
        elementwise._probing_stream(nn.Sequential(nn.ReLU()))
    monkeypatch.setattr(elementwise, "_nets_installed", lambda: True)
    assert elementwise._probing_stream(nn.Sequential(nn.ReLU())).unverified


def test_composite_refusal_points_to_nets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(elementwise, "_nets_installed", lambda: False)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)

        def forward(self, x: Tensor) -> Tensor:
            return torch.relu(self.conv(x))

    stream = elementwise.Elementwise1dStream(Block(), verify=True)
    with pytest.raises(pts.NotStreamableError, match="pip install torchstreamer-nets"):
        stream(torch.randn(2, 8))


def test_scripted_stream_is_exact() -> None:
    module = nn.Hardswish().double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted: Any = torch.jit.script(pts.Elementwise1dStream(module))
        x = torch.randn(2, 3, 19, dtype=torch.float64)
        assert_streams_exactly(module, x, stream=scripted, partitions=2)
        # a probing stream probes in Python, before it is scripted
        probing = pts.Elementwise1dStream(nn.Softsign(), verify=True)
        with pytest.raises(torch.jit.Error, match="stream one block before scripting"):
            torch.jit.script(probing)(torch.randn(1, 2, 3))
        probing(torch.randn(1, 2, 3), final=True)
        assert_streams_exactly(nn.Softsign(), x, stream=torch.jit.script(probing), partitions=1)
        with pytest.raises(torch.jit.Error, match="invalid_elementwise_output"):
            torch.jit.script(pts.Elementwise1dStream(nn.AvgPool1d(2)))(torch.randn(1, 4))


def test_compiled_stream_is_exact() -> None:
    module = nn.SiLU()
    compiled: Any = torch.compile(pts.create_stream(module), backend="eager")
    x = torch.randn(1, 3, 48)
    blocks = [compiled(x[..., i : i + 16], final=i + 16 >= 48) for i in range(0, 48, 16)]
    torch.testing.assert_close(torch.cat(blocks, -1), module(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_follows_module_dtype(dtype: torch.dtype) -> None:
    norm = eval_batch_norm()
    stream = pts.create_stream(norm).to(dtype)
    assert norm.weight.dtype == dtype
    assert_streams_exactly(norm, torch.randn(2, 3, 20).to(dtype), stream=stream, partitions=2)
    with pytest.raises(pts.StreamError, match="dtype"):
        stream(torch.randn(3, 5))
    assert_streams_exactly(nn.GELU(), torch.randn(2, 20).to(dtype), partitions=2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streams_exactly_on_cuda(dtype: torch.dtype) -> None:
    norm = eval_batch_norm().to("cuda", dtype)
    x = torch.randn(2, 3, 25, device="cuda", dtype=dtype)
    assert_streams_exactly(norm, x, stream=pts.create_stream(norm), partitions=2)
    with pytest.raises(pts.StreamError, match="cuda"):
        pts.create_stream(norm)(x.cpu())
    # the probe runs on the block's device
    snake = Snake(3).to("cuda", dtype)
    assert_streams_exactly(snake, x, stream=elementwise._probing_stream(snake), partitions=2)
    with pytest.raises(pts.NotStreamableError, match="not element-wise"):
        elementwise._probing_stream(Lambda(lambda v: v.cumsum(-1)))(x)


@pytest.mark.parametrize("onednn", [True, False])
def test_short_gelu_blocks_leave_the_onednn_switch_as_it_was(onednn: bool) -> None:
    # short float32 blocks run GELU with PyTorch's kernel, oneDNN switched off around the call
    gelu = nn.GELU()
    x = torch.randn(3, 8, 1500)
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = onednn
    try:
        stream = pts.Elementwise1dStream(gelu)
        # blocks on both sides of the length where oneDNN takes over again
        cut = 1500 - elementwise.GELU_NATIVE_ELEMENTS // 24 - 10
        y = torch.cat([stream(x[..., :1]), stream(x[..., 1:cut]), stream(x[..., cut:])], dim=-1)
        assert torch.backends.mkldnn.enabled is onednn
        torch.backends.mkldnn.enabled = True
        torch.testing.assert_close(y, gelu(x))
    finally:
        torch.backends.mkldnn.enabled = before

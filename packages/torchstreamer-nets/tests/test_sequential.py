"""Sequential1dStream: every layer handler in a chain, compared with the network's own output."""

from typing import Any, Optional

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
    stream_blocks,
)


@given(data=st.data(), length=st.integers(8, 40), batched=st.booleans())
def test_random_sequentials_stream_exactly(
    data: st.DataObject, layers: Any, offline: Any, length: int, batched: bool
) -> None:
    channels = data.draw(st.sampled_from([1, 2, 3]))
    modules, _ = layers(data.draw, channels, count=5)
    net = nn.Sequential(*modules).double().eval()
    x = torch.randn(*([2] if batched else []), channels, length, dtype=torch.float64)
    expected = offline(net, x)
    assume(expected is not None)
    assert_streams_exactly(net, x, expected=expected, partitions=4, seed=length)


@given(data=st.data(), length=st.integers(8, 40))
def test_random_sequentials_valid_edges_match_unpadded_network(
    data: st.DataObject, layers: Any, offline: Any, length: int
) -> None:
    modules, _ = layers(data.draw, 2, count=4, kinds=("conv", "act"))
    net = nn.Sequential(*modules).double()
    unpadded = nn.Sequential(*(_unpadded(module) for module in net))
    x = torch.randn(2, length, dtype=torch.float64)
    expected = offline(unpadded, x)
    assume(expected is not None)
    stream = pts.Sequential1dStream(net, edges="valid")
    assert_streams_exactly(net, x, stream=stream, expected=expected, partitions=3)


def _unpadded(module: nn.Module) -> nn.Module:
    if not isinstance(module, nn.Conv1d):
        return module
    m = module
    conv = nn.Conv1d(
        m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], 0, m.dilation[0], m.groups,
        m.bias is not None,
    )  # fmt: skip
    conv.load_state_dict(m.state_dict())
    return conv.double()


def test_nested_sequentials_stream_exactly(device: torch.device) -> None:
    inner = nn.Sequential(
        nn.Conv1d(3, 3, 3, padding=1), nn.Sequential(nn.Tanh(), nn.Conv1d(3, 3, 2))
    )
    net = nn.Sequential(nn.Conv1d(2, 3, 5, padding=2), inner, nn.AvgPool1d(2)).double().to(device)
    x = torch.randn(4, 2, 37, dtype=torch.float64, device=device)
    assert_streams_exactly(net, x)
    assert_minimal_latency(net, x[0])


def test_float32_within_the_documented_tolerance(device: torch.device) -> None:
    net = nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.GELU(), nn.Conv1d(16, 16, 3, stride=2, padding=1),
        nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1), nn.Conv1d(8, 1, 3, padding=1),
    ).to(device)  # fmt: skip
    x = torch.randn(3, 1, 64, device=device)
    assert_streams_exactly(net, x, partitions=4)


def test_final_reaches_the_stages_after_one_that_has_nothing_left() -> None:
    # the strided conv has nothing more on the final empty block; the transposed conv after it
    # still holds the overlap of its last outputs (torch-streamer 0.0.2 lost them)
    net = nn.Sequential(
        nn.Conv1d(1, 2, 4, stride=4), nn.ConvTranspose1d(2, 1, 6, stride=2)
    ).double()
    x = torch.randn(1, 32, dtype=torch.float64)
    stream = pts.Sequential1dStream(net)
    outputs = stream_blocks(stream, x, [32], final_empty=True)
    assert outputs[-1] is not None
    assert outputs[-1].shape[-1] == 4
    assert torch.allclose(torch.cat([y for y in outputs if y is not None], -1), net(x))


def test_minimal_latency_of_a_mixed_network() -> None:
    # a strictly monotonic activation: where ReLU clips a whole window to zero, the outputs
    # there no longer depend on the input, and the oracle rightly finds them determined early
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ConstantPad1d((2, 0), 0.0), nn.Conv1d(1, 4, 3), nn.Tanh(),
        nn.Conv1d(4, 4, 3, stride=2, padding=1), nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1),
        nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False),
    ).double()  # fmt: skip
    x = torch.randn(1, 30, dtype=torch.float64)
    assert_minimal_latency(net, x)


@given(data=st.data(), length=st.integers(12, 30))
def test_random_sequentials_have_minimal_latency(
    data: st.DataObject, layers: Any, offline: Any, length: int
) -> None:
    # strided layers make the stream hold short blocks back (Sequential1dStream._step_lazy);
    # the check covers that and the demand bounds it relies on. ReLU and max pooling are left
    # out: where they flatten a window, outputs stop depending on the input and are determined
    # earlier than any stream could know
    kinds = ("conv", "pool", "act", "transposed", "upsample")
    modules, _ = layers(data.draw, 2, count=5, kinds=kinds)
    assume(not any(isinstance(m, (nn.ReLU, nn.MaxPool1d)) for m in modules))
    # known limit: outputs that depend on no input at all, which each layer's stream emits only
    # once its own window has arrived; the gaps of a transposed convolution whose taps skip
    # positions are such outputs (so are pads of pads: a reflection of a constant padding)
    assume(not any(_has_gaps(m) for m in modules))
    net = nn.Sequential(*modules).double().eval()
    x = torch.randn(2, length, dtype=torch.float64)
    assume(offline(net, x) is not None)
    assert_minimal_latency(net, x)


def _has_gaps(module: nn.Module) -> bool:
    if not isinstance(module, nn.ConvTranspose1d):
        return False
    return module.dilation[0] > 1 or module.stride[0] > module.kernel_size[0]


class _Decimate(pts.BaseStream):
    """Every second sample, returned as a view of the block it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = 0

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = x[..., self.phase :: 2]
        self.phase = (self.phase + x.size(-1)) % 2 if not final else 0
        return y if y.size(-1) > 0 else None

    def demand(self, outputs: int) -> int:
        return 2 * outputs - 1 if self.phase == 0 else 2 * outputs

    def timing(self) -> pts.Timing:
        return pts.Timing.window(1, 2)


def test_short_blocks_wait_until_the_network_can_emit() -> None:
    net = nn.Sequential(
        nn.Conv1d(1, 8, 1), nn.GELU(), nn.Conv1d(8, 8, 2, stride=2), nn.AvgPool1d(2),
        nn.ConvTranspose1d(8, 1, 2, stride=2),
    ).double().eval()  # fmt: skip
    x = torch.randn(1, 64, dtype=torch.float64)
    stream = pts.Sequential1dStream(net)
    first = stream.stages[0]
    calls = []
    original = first.step
    first.step = lambda block, final=False: calls.append(block.size(-1)) or original(block, final)
    outputs = [stream(x[:, i : i + 1], final=i == 63) for i in range(64)]
    got = torch.cat([y for y in outputs if y is not None], dim=-1)
    torch.testing.assert_close(got, net(x))
    # one call of the first layer per four samples (the next output needs them all), not 64
    assert calls == [4] * 16
    assert [y is None for y in outputs] == [i % 4 != 3 for i in range(64)]


def test_encoder_with_residual_units_holds_short_blocks() -> None:
    # a codec-like encoder: padded convolutions, residual units, strided downsampling
    def unit(channels: int) -> nn.Module:
        return pts.Residual1d(
            nn.ELU(), nn.Conv1d(channels, channels, 3, padding=1), nn.ELU(),
            nn.Conv1d(channels, channels, 1),
        )  # fmt: skip

    net = nn.Sequential(
        nn.Conv1d(1, 4, 7, padding=3), unit(4), nn.Conv1d(4, 8, 4, stride=2, padding=1),
        unit(8), nn.Conv1d(8, 8, 4, stride=2, padding=1),
    ).double().eval()  # fmt: skip
    stream = pts.Sequential1dStream(net)
    assert stream.lazy
    x = torch.randn(1, 40, dtype=torch.float64)
    assert_streams_exactly(net, x, stream=stream, partitions=4)
    assert_minimal_latency(net, x, stream=stream)


def test_held_blocks_never_leak_into_outputs() -> None:
    # a stage that returns views of its input: what the network returns must not be the
    # storage it holds short blocks in, or the next block would overwrite it
    stream = pts.Sequential1dStream(nn.Sequential(nn.Identity(), nn.Identity()))
    stream.stages[0] = _Decimate()
    stream.lazy, stream.period = True, 2
    x = torch.randn(1, 20)
    outputs = [stream(x[:, i : i + 1]) for i in range(20)]
    got = torch.cat([y for y in outputs if y is not None], dim=-1)
    assert torch.equal(got, x[:, ::2])


def test_empty_sequential_is_the_identity() -> None:
    stream = pts.Sequential1dStream(nn.Sequential())
    x = torch.randn(2, 9)
    assert_streams_exactly(nn.Sequential(), x, stream=stream)
    assert stream(x[:, :0]) is None
    assert stream.receptive_field == 1
    assert stream.lookahead == 0


def test_elementwise_only_sequential() -> None:
    net = nn.Sequential(nn.GELU(), nn.Tanh(), nn.Dropout(0.5)).eval()
    assert_streams_exactly(net, torch.randn(3, 2, 20))
    assert pts.create_stream(net).receptive_field == 1


def test_in_channels_are_read_past_leading_activations() -> None:
    net = nn.Sequential(nn.GELU(), nn.Dropout(), nn.Conv1d(3, 4, 3))
    stream = pts.Sequential1dStream(net)
    assert stream.in_channels == 3
    with pytest.raises(pts.StreamError, match=r"expected 3 input channels .*Conv1d\(3, 4.*got 2"):
        stream(torch.randn(2, 10))


class Shift(nn.Module):
    """An element-wise module without a handler: probed, then streamed as element-wise."""

    def forward(self, x: Tensor) -> Tensor:
        return x * 2 + 1


def test_first_child_of_unknown_channels() -> None:
    net = nn.Sequential(Shift(), nn.Conv1d(2, 3, 3, padding=1), nn.Conv1d(3, 1, 2)).double()
    stream = pts.Sequential1dStream(net)
    assert stream.in_channels == -1
    assert_streams_exactly(net, torch.randn(2, 2, 25, dtype=torch.float64), stream=stream)


def test_unstreamable_child_is_named_by_its_path() -> None:
    net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Sequential(nn.ReLU(), nn.GroupNorm(2, 4)))
    with pytest.raises(pts.NotStreamableError, match=r"^1\.1 \(GroupNorm\): .*register_streamer"):
        pts.Sequential1dStream(net)


class Picky(pts.BaseStream):
    """Refuses blocks with negative samples, as a user's stream might, with a StreamError."""

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if bool((x < 0).any()):
            raise pts.StreamError("Picky: negative samples")
        return x if x.shape[-1] else None


class PickyModule(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


def test_run_time_error_of_a_child_is_named_by_its_path() -> None:
    pts.register_streamer(PickyModule, lambda module: Picky())
    try:
        net = nn.Sequential(nn.Identity(), nn.Sequential(nn.Tanh(), PickyModule()))
        stream = pts.create_stream(net)
        assert torch.equal(stream(torch.ones(1, 4)), net(torch.ones(1, 4)))
        with pytest.raises(pts.StreamError, match=r"^1\.1 \(PickyModule\): Picky: negative"):
            stream(-torch.ones(1, 4))
    finally:
        pts.unregister_streamer(PickyModule)


def test_timing_composes() -> None:
    net = nn.Sequential(nn.Conv1d(1, 1, 5, padding=2), nn.Conv1d(1, 1, 3, stride=2, padding=1))
    stream = pts.Sequential1dStream(net)
    assert stream.receptive_field == 7
    assert stream.rate == pytest.approx(0.5)
    assert "stages.1" in pts.describe(stream)


def test_snapshots_resume_exactly() -> None:
    net = nn.Sequential(
        nn.Conv1d(1, 3, 5, padding=2), nn.ConvTranspose1d(3, 1, 4, stride=2)
    ).double()
    x = torch.randn(1, 40, dtype=torch.float64)
    assert_resumes_from_snapshots(net, x, 17, stream=pts.Sequential1dStream(net))


def test_rejects_what_is_not_a_sequential() -> None:
    with pytest.raises(pts.StreamError, match=r"expected an nn\.Sequential"):
        pts.Sequential1dStream(nn.Conv1d(1, 1, 1))  # type: ignore[arg-type]


class Doubling(nn.Sequential):
    """A Sequential whose forward does more than chain its children."""

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = super().forward(x)  # type: ignore[no-untyped-call]
        return y * 2


def test_a_sequential_that_overrides_forward_is_streamed_from_its_forward() -> None:
    net = Doubling(nn.Conv1d(1, 2, 3, padding=1), nn.Tanh()).double()
    stream = pts.create_stream(net)
    assert isinstance(stream, pts.Graph1dStream)
    assert_streams_exactly(net, torch.randn(2, 1, 20, dtype=torch.float64), stream=stream)
    with pytest.raises(pts.NotStreamableError, match="overrides forward"):
        pts.Sequential1dStream(net)


def test_a_transposed_convolution_after_another_emits_what_the_first_is_sure_to_give() -> None:
    # after one input the first layer is sure to give two outputs (its kernel spans two), which
    # determine two outputs of the second, whose right crop cannot reach them any more
    net = nn.Sequential(
        nn.ConvTranspose1d(2, 2, 2, bias=False), nn.ConvTranspose1d(2, 2, 3, stride=3, padding=1)
    ).double()
    assert_minimal_latency(net, torch.randn(2, 12, dtype=torch.float64))


def test_a_layer_that_owes_an_output_releases_a_held_transposed_output() -> None:
    # after 3 samples the pool (ceil_mode) owes a second output, so the transposed
    # convolution's output cropped only at the end of a signal is determined: it must come
    # out on that sample although the pool emits nothing on it
    net = nn.Sequential(
        nn.AvgPool1d(2, ceil_mode=True),
        nn.ConvTranspose1d(2, 2, 3, stride=3, padding=1, bias=False),
    ).double()
    x = torch.randn(2, 12, dtype=torch.float64)
    assert_minimal_latency(net, x)
    assert_streams_exactly(net, x)


def test_a_layer_that_refuses_short_signals_makes_the_next_sample_certain() -> None:
    # the pool refuses a single transposed output, so the network refuses a one-sample
    # signal: a second sample is sure to come, and with it the cropped output exists
    net = nn.Sequential(
        nn.GELU(),
        nn.ConvTranspose1d(2, 2, 3, stride=3, padding=1, bias=False),
        nn.AvgPool1d(2, stride=1),
    ).double()
    x = torch.randn(2, 12, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        net(x[:, :1])
    assert_minimal_latency(net, x)
    assert_streams_exactly(net, x)

"""Residual1d and Residual1dStream: the skip path aligned by the inner stream's own behaviour."""

import copy
from typing import Any

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly


@pytest.mark.parametrize("shortening", [0, 1, 2, 3, 4])
def test_residual1d_crops_the_input_symmetrically(shortening: int) -> None:
    conv = nn.Conv1d(1, 1, shortening + 1, bias=False)
    nn.init.zeros_(conv.weight)
    block = pts.Residual1d(conv)
    x = torch.arange(10.0).view(1, 10)
    left = shortening // 2  # the left side loses the floor of half, as torch-streamer 0.0.2
    assert torch.equal(block(x), x[:, left : 10 - (shortening - left)])


def test_residual1d_refuses_an_inner_network_that_lengthens() -> None:
    block = pts.Residual1d(nn.Conv1d(1, 1, 3, padding=2))
    with pytest.raises(ValueError, match="returned 12 samples for 10"):
        block(torch.randn(1, 10))
    with pytest.raises(pts.NotStreamableError, match="more than the input"):
        pts.Residual1dStream(block)


@pytest.mark.parametrize(
    "inner",
    [
        lambda: nn.Conv1d(2, 2, 3, stride=2),
        lambda: nn.Sequential(nn.GELU(), nn.AvgPool1d(2)),
        lambda: nn.Upsample(scale_factor=2),
        lambda: nn.ConvTranspose1d(2, 2, 4, stride=2),
        # not streamable (GroupNorm), so found by looking at the layers
        lambda: nn.Sequential(nn.GroupNorm(1, 2), nn.MaxPool1d(3)),
    ],
)
def test_rate_changes_are_invalid_residual_strides(inner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"^invalid_residual_stride: "):
        pts.Residual1d(inner())
    if not isinstance(inner(), nn.Sequential) or not isinstance(inner()[0], nn.GroupNorm):
        with pytest.raises(ValueError, match=r"^invalid_residual_stride: "):
            pts.Residual1dStream(inner())


def test_down_then_up_keeps_the_rate_and_streams(device: torch.device) -> None:
    inner = nn.Sequential(
        nn.Conv1d(2, 4, 4, stride=2, padding=1), nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)
    )
    block = pts.Residual1d(inner).double().to(device)
    x = torch.randn(2, 2, 31, dtype=torch.float64, device=device)
    assert_streams_exactly(block, x)
    assert_minimal_latency(block, x[0])


def test_several_modules_make_a_sequential_inner_network() -> None:
    block = pts.Residual1d(nn.GELU(), nn.Conv1d(3, 3, 3))
    assert isinstance(block.net, nn.Sequential)
    assert len(block.net) == 2
    assert_streams_exactly(block, torch.randn(3, 20))


def test_a_bare_module_streams_as_its_residual() -> None:
    conv = nn.Conv1d(2, 2, 5, padding=1).double()
    stream = pts.Residual1dStream(conv)
    x = torch.randn(2, 30, dtype=torch.float64)
    assert_streams_exactly(pts.Residual1d(conv), x, stream=stream)


@st.composite
def _residual_stack(draw, layers):  # type: ignore[no-untyped-def]
    channels = draw(st.sampled_from([1, 2]))
    blocks: list[nn.Module] = []
    for _ in range(draw(st.integers(1, 3))):
        inner, out = layers(
            draw, channels, count=3, keep_rate=True, kinds=("conv", "pool", "act", "pad")
        )
        if out != channels:
            inner.append(nn.Conv1d(out, channels, draw(st.integers(1, 3))))
        if draw(st.booleans()):
            nested, out = layers(draw, channels, count=2, keep_rate=True, kinds=("conv", "pool"))
            if out == channels:
                inner.append(pts.Residual1d(nn.Sequential(*nested)))
        blocks.append(pts.Residual1d(nn.Sequential(*inner)))
    return channels, nn.Sequential(*blocks)


@given(data=st.data(), length=st.integers(12, 40), batched=st.booleans())
def test_random_residual_stacks_stream_exactly(
    data: st.DataObject, layers: Any, offline: Any, length: int, batched: bool
) -> None:
    try:
        channels, net = data.draw(_residual_stack(layers))
    except ValueError:
        assume(False)  # an inner network that lengthens the signal fails offline
    net = net.double().eval()
    x = torch.randn(*([3] if batched else []), channels, length, dtype=torch.float64)
    expected = offline(net, x)
    assume(expected is not None)
    assert_streams_exactly(net, x, expected=expected, partitions=4, seed=length)


@pytest.mark.parametrize(
    "inner",
    [
        lambda: nn.Conv1d(2, 2, 5, padding=2),
        lambda: nn.Sequential(nn.Conv1d(2, 2, 3), nn.AvgPool1d(3, stride=1, padding=1)),
        lambda: nn.Sequential(nn.ConstantPad1d((4, 0), 0.0), nn.Conv1d(2, 2, 5)),
        lambda: nn.Sequential(nn.Conv1d(2, 2, 4, padding=1), pts.Residual1d(nn.Conv1d(2, 2, 2))),
    ],
)
def test_minimal_latency(inner) -> None:  # type: ignore[no-untyped-def]
    block = pts.Residual1d(inner()).double()
    assert_minimal_latency(block, torch.randn(2, 24, dtype=torch.float64))


def test_lookahead_of_a_padded_and_an_unpadded_inner_network() -> None:
    assert pts.Residual1dStream(nn.Conv1d(1, 1, 5, padding=2)).lookahead == 2
    # unpadded: output j is inner[j] + x[j + 2], and inner[j] reads up to x[j + 4]
    assert pts.Residual1dStream(nn.Conv1d(1, 1, 5)).lookahead == 4
    assert pts.Residual1dStream(nn.Conv1d(1, 1, 5)).receptive_field == 5


def test_valid_edges_ignore_the_inner_padding_as_0_0_2_did() -> None:
    conv = nn.Conv1d(1, 1, 3, padding=1).double()
    x = torch.randn(1, 20, dtype=torch.float64)
    valid = torch.nn.functional.conv1d(x, conv.weight, conv.bias) + x[:, 1:-1]
    stream = pts.Residual1dStream(pts.Residual1d(conv), edges="valid")
    assert_streams_exactly(conv, x, stream=stream, expected=valid)


def test_unstreamable_inner_layer_is_named_by_its_path() -> None:
    block = pts.Residual1d(nn.Sequential(nn.Conv1d(2, 2, 1), nn.GroupNorm(1, 2)))
    with pytest.raises(pts.NotStreamableError, match=r"^net\.1 \(GroupNorm\): "):
        pts.Residual1dStream(block)
    net = nn.Sequential(nn.Identity(), block)
    with pytest.raises(pts.NotStreamableError, match=r"^1\.net\.1 \(GroupNorm\): "):
        pts.create_stream(net)


def test_the_output_never_shares_memory_with_the_input() -> None:
    stream = pts.Residual1dStream(nn.Identity())
    x = torch.randn(2, 8)
    y = stream(x)
    assert y is not None
    assert torch.equal(y, 2 * x)
    y += 1
    assert torch.equal(y, 2 * x + 1)
    assert not torch.equal(x, y - x)


def test_fork_mid_stream() -> None:
    block = pts.Residual1d(nn.Conv1d(1, 1, 7, padding=3)).double()
    x = torch.randn(1, 30, dtype=torch.float64)
    stream = pts.Residual1dStream(block)
    with torch.no_grad():
        head = stream(x[:, :13])
        fork = copy.deepcopy(stream)
        for resumed in (stream, fork):
            tail = resumed(x[:, 13:], final=True)
            got = torch.cat([t for t in (head, tail) if t is not None], dim=-1)
            assert torch.allclose(got, block(x))


class Doubled(nn.Module):
    """Element-wise in time, but it doubles the channels: the first Conv1d misleads a guess."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, -x], dim=1)


def test_alignment_is_measured_on_the_first_block_when_channels_cannot_be_guessed() -> None:
    block = pts.Residual1d(nn.Sequential(Doubled(), nn.Conv1d(4, 2, 3))).double()
    stream = pts.Residual1dStream(block)
    with pytest.raises(NotImplementedError, match="first block"):
        stream.timing()
    assert_streams_exactly(block, torch.randn(2, 2, 20, dtype=torch.float64), stream=stream)
    assert stream.lookahead == 2


def test_seed_resnet_in_float32(device: torch.device) -> None:
    net = nn.Sequential(
        nn.Conv1d(1, 32, 1),
        *[
            pts.Residual1d(nn.GELU(), nn.Conv1d(32, 64, 3), nn.GELU(), nn.Conv1d(64, 32, 1))
            for _ in range(3)
        ],
        nn.Conv1d(32, 1, 1),
    ).to(device)
    assert_streams_exactly(net, torch.randn(3, 1, 60, device=device), partitions=4)

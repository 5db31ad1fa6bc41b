"""Parallel1d and Concat1d: branches fed one input, cropped to the shortest, summed or stacked."""

import copy
from typing import Any

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly, tolerance


def test_parallel1d_crops_each_branch_symmetrically_and_sums_in_order() -> None:
    fusion = pts.Parallel1d(nn.Identity(), nn.ConstantPad1d((0, 3), 0.0), nn.ConstantPad1d(1, 0.0))
    x = torch.arange(1.0, 7.0).view(1, 6)
    # lengths 6, 9 and 8: the longer two lose (3 // 2, 3 - 3 // 2) and (1, 1)
    expected = x + torch.nn.functional.pad(x, (0, 3))[:, 1:7] + x
    assert torch.equal(fusion(x), expected)
    assert torch.equal(pts.Parallel1d(nn.Identity(), nn.Identity(), reduce="mean")(x), x)


def test_concat1d_stacks_channels_of_the_cropped_branches() -> None:
    block = pts.Concat1d(nn.Conv1d(2, 1, 1), nn.Conv1d(2, 3, 5))
    y = block(torch.randn(4, 2, 20))
    assert y.shape == (4, 4, 16)


def test_containers_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one branch"):
        pts.Parallel1d()
    with pytest.raises(ValueError, match="at least one branch"):
        pts.Concat1d()
    with pytest.raises(ValueError, match="reduce must be 'sum' or 'mean'"):
        pts.Parallel1d(nn.Identity(), reduce="max")
    with pytest.raises(pts.StreamError, match="expected a Parallel1d"):
        pts.Parallel1dStream(nn.Identity())  # type: ignore[arg-type]
    with pytest.raises(pts.StreamError, match="expected a Concat1d"):
        pts.Concat1dStream(nn.Identity())  # type: ignore[arg-type]


def test_hifigan_style_fusion_streams_exactly(device: torch.device) -> None:
    def resblock(kernel: int) -> nn.Module:
        convs = [nn.Conv1d(4, 4, kernel, dilation=d, padding=d * (kernel - 1) // 2) for d in (1, 3)]
        return nn.Sequential(*[pts.Residual1d(nn.LeakyReLU(0.1), conv) for conv in convs])

    fusion = pts.Parallel1d(resblock(3), resblock(5), resblock(7), reduce="mean")
    fusion = fusion.double().to(device)
    x = torch.randn(2, 4, 40, dtype=torch.float64, device=device)
    assert_streams_exactly(fusion, x, partitions=4)
    assert_minimal_latency(fusion, x[0, :, :30])
    assert pts.create_stream(fusion).lookahead == 12


@st.composite
def _branches(draw, layers, rate_keeping: bool):  # type: ignore[no-untyped-def]
    channels = draw(st.sampled_from([1, 2]))
    kinds = ("conv", "pool", "act", "pad")
    branches = []
    for _ in range(draw(st.integers(1, 3))):
        modules, out = layers(draw, channels, count=3, keep_rate=rate_keeping, kinds=kinds)
        if out != 2:
            modules.append(nn.Conv1d(out, 2, 1))
        branches.append(nn.Sequential(*modules))
    return channels, branches


@given(data=st.data(), length=st.integers(10, 36), concat=st.booleans(), mean=st.booleans())
def test_random_branches_stream_exactly(
    data: st.DataObject, layers: Any, offline: Any, length: int, concat: bool, mean: bool
) -> None:
    channels, branches = data.draw(_branches(layers, rate_keeping=True))
    module = (
        pts.Concat1d(*branches)
        if concat
        else pts.Parallel1d(*branches, reduce="mean" if mean else "sum")
    )
    module = module.double().eval()
    x = torch.randn(2, channels, length, dtype=torch.float64)
    expected = offline(module, x)
    assume(expected is not None)
    assert_streams_exactly(module, x, expected=expected, partitions=4, seed=length)


def test_strided_branches_of_one_rate_stream_exactly() -> None:
    module = pts.Concat1d(
        nn.Conv1d(1, 2, 4, stride=2), nn.Conv1d(1, 1, 2, stride=2), nn.AvgPool1d(2)
    ).double()
    x = torch.randn(1, 33, dtype=torch.float64)
    assert_streams_exactly(module, x)
    assert_minimal_latency(module, x)


def test_branches_at_different_rates_are_refused() -> None:
    module = pts.Parallel1d(nn.Conv1d(1, 1, 2, stride=2), nn.Identity())
    with pytest.raises(
        pts.NotStreamableError, match=r"different sample rates \(branches.0 at rate 1/2"
    ):
        pts.create_stream(module)


def test_branches_whose_alignment_depends_on_the_length_are_refused() -> None:
    # lengths 2 * (T // 2) and T: the identity is one sample longer at odd T, but the crop of
    # one sample is on the right, so the alignment holds for every T
    down_up = nn.Sequential(nn.Conv1d(1, 1, 2, stride=2), nn.ConvTranspose1d(1, 1, 2, stride=2))
    assert_streams_exactly(pts.Parallel1d(down_up, nn.Identity()), torch.randn(1, 21))
    # two samples longer at even T, one at odd T: the left crop flips between 1 and 0
    shifted = nn.Sequential(nn.ConstantPad1d((0, 2), 0.0), down_up)
    with pytest.raises(pts.NotStreamableError, match="depends on the input length"):
        pts.Parallel1dStream(pts.Parallel1d(shifted, nn.Identity()))


def test_branches_that_expect_different_channels_are_refused() -> None:
    with pytest.raises(pts.StreamError, match="different input channel counts"):
        pts.Concat1dStream(pts.Concat1d(nn.Conv1d(2, 1, 1), nn.Conv1d(3, 1, 1)))


def test_unstreamable_branch_layer_is_named_by_its_path() -> None:
    module = pts.Concat1d(nn.Identity(), nn.Sequential(nn.Conv1d(2, 2, 1), nn.LSTM(2, 2)))
    with pytest.raises(pts.NotStreamableError, match=r"^branches\.1\.1 \(LSTM\): "):
        pts.create_stream(module)


def test_state_holds_no_autograd_history_while_gradients_are_on() -> None:
    # the weights need gradients, but streams compute without autograd: neither what they
    # return nor what they hold links into a graph
    module = pts.Parallel1d(nn.Conv1d(1, 1, 5, padding=2), nn.Conv1d(1, 1, 3, padding=1))
    stream = pts.create_stream(module)
    x = torch.randn(1, 60)
    outputs = [stream(x[:, i : i + 1]) for i in range(30)]
    assert all(y is None or not y.requires_grad for y in outputs)
    fork = copy.deepcopy(stream)  # fails on tensors that carry a graph
    rest = [fork(x[:, 30:], final=True)]
    got = torch.cat([y for y in outputs + rest if y is not None], dim=-1)
    atol, rtol = tolerance(x.dtype)
    torch.testing.assert_close(got, module(x), atol=atol, rtol=rtol)

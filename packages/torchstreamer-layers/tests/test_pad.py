"""Pad1dStream against the padding modules' own offline output."""

import warnings
from fractions import Fraction
from typing import Any, cast

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
    determined_outputs,
)

Pad = nn.ConstantPad1d | nn.ReflectionPad1d | nn.ReplicationPad1d


@st.composite
def pads(draw: st.DrawFn) -> tuple[Pad, int]:
    """A random padding layer (negative sides crop) and a signal length it accepts."""
    mode = draw(st.sampled_from(["constant", "zero", "reflect", "replicate"]))
    left, right = draw(st.integers(-4, 6)), draw(st.integers(-4, 6))
    pad: Pad
    if mode == "constant":
        pad = nn.ConstantPad1d((left, right), draw(st.floats(-2, 2)))
    elif mode == "zero":
        pad = nn.ZeroPad1d((left, right))
    elif mode == "reflect":
        pad = nn.ReflectionPad1d((left, right))
    else:
        pad = nn.ReplicationPad1d((left, right))
    length = draw(st.integers(1, 24))
    try:
        pad(torch.zeros(1, 1, length))
    except RuntimeError:
        # too short (reflection needs more samples than it pads, cropping samples to crop)
        length = max(left, right, 0) + max(-left, 0) + max(-right, 0) + 1
    return pad, length


def signal(shape: tuple[int, ...], seed: int) -> Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@given(pads(), st.booleans(), st.integers(0, 2**16))
def test_streams_exactly_float64(case: tuple[Pad, int], batched: bool, seed: int) -> None:
    pad, length = case
    x = signal((2, 3, length) if batched else (3, length), seed)
    assert_streams_exactly(pad, x, stream=pts.Pad1dStream(pad), partitions=4, seed=seed)


@given(pads(), st.integers(0, 2**16))
def test_streams_exactly_float32(case: tuple[Pad, int], seed: int) -> None:
    pad, length = case
    assert_streams_exactly(pad, signal((2, 2, length), seed).float(), partitions=3, seed=seed)


@given(pads(), st.integers(0, 2**16))
def test_minimal_latency(case: tuple[Pad, int], seed: int) -> None:
    pad, length = case
    x = signal((2, length), seed)
    stream = pts.Pad1dStream(pad)
    if pad.padding[1] >= 0:
        assert_minimal_latency(pad, x, stream=stream, seed=seed)
        return
    # a right crop: an output exists only once as many samples as are cropped follow it,
    # which the continuations of determined_outputs() take for granted
    emitted = 0
    for prefix in range(length + 1):
        y = stream(x[..., prefix - 1 : prefix] if prefix else x[..., :0])
        emitted += 0 if y is None else y.shape[-1]
        try:
            existing = pad(x[..., :prefix]).shape[-1]
        except RuntimeError:
            continue  # no signal ends here: a prefix this short is the module's error
        assert emitted == min(determined_outputs(pad, x, prefix, seed=seed), existing), prefix


@given(pads(), st.integers(0, 2**16))
def test_valid_edges_only_crop(case: tuple[Pad, int], seed: int) -> None:
    pad, length = case
    left, right = pad.padding
    x = signal((1, 2, length), seed)
    expected = x[..., max(-left, 0) : max(length - max(-right, 0), 0)]
    stream = pts.Pad1dStream(pad, edges="valid")
    assert_streams_exactly(pad, x, stream=stream, expected=expected, partitions=3, seed=seed)


def test_constant_padding_comes_before_any_sample() -> None:
    stream = pts.Pad1dStream(nn.ConstantPad1d((3, 1), 2.5))
    y = stream(torch.empty(1, 2, 0))
    torch.testing.assert_close(y, torch.full((1, 2, 3), 2.5))


def test_steady_state_returns_the_block_without_copy() -> None:
    pad = nn.ReplicationPad1d((2, 3)).double()
    x = signal((2, 30), 0)
    stream = pts.Pad1dStream(pad)
    head = stream(x[:, :10])
    middle = stream(x[:, 10:20])
    assert middle is not None
    assert middle.data_ptr() == x[:, 10:20].data_ptr()
    tail = stream(x[:, 20:], final=True)
    torch.testing.assert_close(torch.cat([head, middle, tail], -1), pad(x))


@pytest.mark.parametrize(
    ("pad", "field", "lookahead"),
    [
        (nn.ConstantPad1d((2, 3), 0.0), 1, Fraction(-2)),
        (nn.ReflectionPad1d(0), 1, Fraction(0)),
        (nn.ZeroPad1d((-2, 0)), 1, Fraction(2)),
        (nn.ReplicationPad1d((1, -3)), 4, Fraction(2)),
    ],
)
def test_timing(pad: Pad, field: int, lookahead: Fraction) -> None:
    stream = pts.create_stream(pad)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (
        field,
        Fraction(1),
        lookahead,
    )


def test_circular_padding_is_refused() -> None:
    pad = nn.CircularPad1d((1, 2))
    with pytest.raises(pts.NotStreamableError, match=r"CircularPad1d.*circular"):
        pts.create_stream(pad)
    # ignoring the padding is well defined
    x = torch.randn(2, 20)
    assert_streams_exactly(pad, x, stream=pts.Pad1dStream(pad, edges="valid"), expected=x)


def test_non_pad_is_refused() -> None:
    with pytest.raises(pts.StreamError, match=r"Pad1dStream.*Conv1d"):
        pts.Pad1dStream(cast(Any, nn.Conv1d(1, 1, 1)))


@pytest.mark.parametrize(
    "pad", [nn.ConstantPad1d((2, -1), 1.0), nn.ReflectionPad1d((3, 2)), nn.ReplicationPad1d(2)]
)
def test_scripted_stream_is_exact(pad: Pad) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted: Any = torch.jit.script(pts.Pad1dStream(pad))
    assert_streams_exactly(pad, signal((2, 3, 23), 1), stream=scripted, partitions=3)


def test_compiled_stream_is_exact() -> None:
    pad = nn.ReflectionPad1d((2, 3))
    compiled: Any = torch.compile(pts.Pad1dStream(pad), backend="eager")
    x = torch.randn(1, 3, 48)
    blocks = [compiled(x[..., i : i + 16], final=i + 16 >= 48) for i in range(0, 48, 16)]
    torch.testing.assert_close(torch.cat(blocks, -1), pad(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pad", [nn.ConstantPad1d(2, 1.0), nn.ReflectionPad1d(2)])
def test_follows_block_dtype(pad: Pad, dtype: torch.dtype) -> None:
    x = torch.randn(2, 30).to(dtype)
    try:
        pad(x)
    except RuntimeError as error:  # older torch lacks some half-precision CPU kernels
        pytest.skip(f"the module itself refuses {dtype} here: {error}")
    assert_streams_exactly(pad, x, partitions=2)


def test_snapshot_resumes_exactly() -> None:
    # mid-stream while the left reflection still waits for samples
    pad = nn.ReflectionPad1d((4, 2))
    x = signal((2, 20), 2)
    assert pts.Pad1dStream(pad)(x[:, :3]) is None
    assert_resumes_from_snapshots(pad, x, 3, stream=pts.Pad1dStream(pad))


def test_output_length_is_the_modules() -> None:
    for padding in [(2, 3), (-1, 4), (3, -2), (-2, -1)]:
        pad = nn.ReplicationPad1d(padding)
        stream = pts.Pad1dStream(pad)
        for length in range(4, 12):
            assert stream.output_length(length) == pad(torch.ones(1, 1, length)).shape[-1]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "pad", [nn.ConstantPad1d((3, -2), 0.5), nn.ReflectionPad1d((2, 4)), nn.ReplicationPad1d(3)]
)
def test_streams_exactly_on_cuda(pad: Pad, dtype: torch.dtype) -> None:
    x = signal((2, 3, 29), 4).to("cuda", dtype)
    assert_streams_exactly(pad, x, stream=pts.Pad1dStream(pad), partitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted: Any = torch.jit.script(pts.Pad1dStream(pad))
    assert_streams_exactly(pad, x, stream=scripted, partitions=2)

"""Upsample1dStream against nn.Upsample's own offline output."""

import random
import sys
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
    random_partition,
    tolerance,
)

# pytest imports test modules with importlib: the shared helpers beside this file need the path
sys.path.insert(0, str(Path(__file__).parent))
from strategies_upsampling import (
    assert_emits_once_determined,
    device_under_test,
    signal,
    upsamplings,
)


@given(upsamplings(), st.integers(1, 40), st.booleans(), st.integers(0, 2**16))
def test_streams_exactly_float64(up: nn.Upsample, length: int, batched: bool, seed: int) -> None:
    stream = pts.Upsample1dStream(up)
    x = signal((2, 3, length), seed)
    if batched:
        assert_streams_exactly(up, x, stream=stream, partitions=4, seed=seed)
    else:
        # nn.Upsample itself takes [B, C, T] only; the stream takes [C, T] too
        expected = up(x[:1])[0]
        assert_streams_exactly(up, x[0], stream=stream, expected=expected, partitions=4, seed=seed)


@given(upsamplings(), st.integers(1, 40), st.integers(0, 2**16))
def test_streams_exactly_float32(up: nn.Upsample, length: int, seed: int) -> None:
    x = signal((2, 2, length), seed, torch.float32)
    assert_streams_exactly(up, x, partitions=3, seed=seed)


@given(upsamplings(), st.integers(0, 2**16))
def test_minimal_latency(up: nn.Upsample, seed: int) -> None:
    # float32, where the stream's weights are the kernel's bit for bit, so that an input whose
    # weight is a rounding error still counts as one the output depends on
    x = signal((1, 2, 12), seed, torch.float32)
    assert_emits_once_determined(up, x, pts.Upsample1dStream(up), exact=True)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear"])
def test_minimal_latency_against_the_core_checker(mode: str) -> None:
    up = nn.Upsample(scale_factor=4, mode=mode)
    assert_minimal_latency(up, signal((1, 2, 16), 1), stream=pts.create_stream(up))


@pytest.mark.parametrize("factor", [3, 5, 7])
def test_long_float32_signals_follow_the_kernels_arithmetic(factor: int) -> None:
    # PyTorch computes linear weights in single precision from the output index; by a few
    # thousand samples they are off the exact ones by far more than float32 rounding
    up = nn.Upsample(scale_factor=factor, mode="linear")
    x = signal((1, 2, 6000), factor, torch.float32)
    assert_streams_exactly(up, x, partitions=1, block=512)


def _stream_in_blocks(
    stream: pts.Upsample1dStream, x: torch.Tensor, sizes: list[int]
) -> torch.Tensor:
    """Streams ``x`` in blocks of ``sizes`` (the last one final) and joins the outputs."""
    outputs, start = [], 0
    with torch.no_grad():
        for index, size in enumerate(sizes):
            y = stream(x[..., start : start + size], final=index == len(sizes) - 1)
            start += size
            if y is not None:
                outputs.append(y)
    return torch.cat(outputs, dim=-1)


def _blocks(length: int, size: int) -> list[int]:
    return [min(size, length - start) for start in range(0, length, size)]


@pytest.mark.parametrize(("factor", "length"), [(3, 20000), (4, 20000), (41, 3000)])
def test_long_signals_in_small_and_large_blocks(factor: int, length: int) -> None:
    # small blocks are gathered, large ones interpolated phase by phase from slices of the
    # input; both must follow the kernel's drifting float32 weights, and at factor 41 its
    # rounding moves the middle output of some groups to the pair of inputs before
    up = nn.Upsample(scale_factor=factor, mode="linear")
    x = signal((1, 16, length), factor, torch.float32)
    expected = up(x)
    stream = pts.Upsample1dStream(up)
    rng = random.Random(factor)
    plans = [
        [length],
        _blocks(length, 64),
        _blocks(length, 2999),
        [1, 2, 3, *_blocks(length - 6, 4096)],
        random_partition(length, rng, block=2048),
    ]
    for sizes in plans:
        y = _stream_in_blocks(stream, x, sizes)
        torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5, msg=f"blocks {sizes[:6]}...")


def test_phases_that_no_slice_serves_are_gathered() -> None:
    # large blocks are interpolated phase by phase, each phase from slices of the input; the
    # kernel's rounding can move an output one input back or forward in some groups (both
    # pairs are interpolated, and the right one picked), and far along a very long signal
    # further (that phase is gathered). White-box: the positions are made up.
    stream = pts.Upsample1dStream(nn.Upsample(scale_factor=4, mode="linear"))
    inputs = signal((1, 3, 40), 10, torch.float32)
    grid = torch.arange(8).unsqueeze(1) + torch.tensor([0, 0, 1, 1])
    grid[3, 1] -= 1  # one input back
    grid[5, 2] += 1  # one input forward
    grid[6, 3] += 2  # two
    first = grid.flatten()
    weight = torch.rand(first.shape, generator=torch.Generator().manual_seed(0))
    keep = 1.0 - weight
    y = torch.empty(1, 3, 8, 4)
    stream._by_phase(inputs, first, keep, weight, y)
    expected = keep * inputs[..., first] + weight * inputs[..., first + 1]
    torch.testing.assert_close(y.flatten(-2), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_large_blocks_repeat_exactly(mode: str, dtype: torch.dtype) -> None:
    # large blocks of factor 2 or 3 go through PyTorch's own kernel once it has repeated a
    # ramp as long (float16 cannot hold a ramp of 3000: repeat_interleave instead); other
    # factors through repeat_interleave, but at factor 41 in single precision the kernel
    # picks the input before at some multiples of 41: gathered, and repeated then patched
    for factor in [2, 3, 5, 41]:
        up = nn.Upsample(scale_factor=factor, mode=mode)
        x = signal((1, 32, 3000), factor, dtype)
        stream = pts.Upsample1dStream(up)
        for size in [3000, 1000, 7]:
            y = _stream_in_blocks(stream, x, _blocks(3000, size))
            assert torch.equal(y, up(x)), (factor, size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("factor", [41, 47, 3, 5, 7])
def test_nearest_follows_the_kernels_picks(factor: int, mode: str, dtype: torch.dtype) -> None:
    # at factors 41 and 47 PyTorch's single-precision index arithmetic picks input
    # i // factor - 1 for some multiples i of the factor, from output `factor` on
    up = nn.Upsample(scale_factor=factor, mode=mode)
    x = signal((2, 3, 60), factor, dtype)
    assert_streams_exactly(up, x, partitions=4, seed=factor)


def test_nearest_factor_41_float32() -> None:
    up = nn.Upsample(scale_factor=41)
    assert_streams_exactly(up, signal((1, 2, 10), 8, torch.float32), partitions=1)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_factor_41_minimal_latency(mode: str) -> None:
    # outputs at multiples of 41 pick the input before: it is held, and nothing waits
    up = nn.Upsample(scale_factor=41, mode=mode)
    assert_minimal_latency(up, signal((1, 2, 12), 3, torch.float32), stream=pts.create_stream(up))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize(("factor", "length"), [(3, 4_500_000), (41, 280_000), (2, 8_400_000)])
def test_nearest_far_along_a_long_signal(
    factor: int, length: int, mode: str, dtype: torch.dtype
) -> None:
    # millions of outputs in, the kernel's rounded index arithmetic departs from i // factor
    # (by up to two inputs either way; float32 first, float64 later): the stream gets there
    # through a few large blocks, then follows it with small and large ones. The input is a
    # ramp, so the outputs are the inputs picked.
    up = nn.Upsample(scale_factor=factor, mode=mode)
    x = torch.arange(length, dtype=dtype).view(1, 1, -1)
    head = length - 20_000
    sizes = [head // 3, head // 3, head - 2 * (head // 3)]
    rng = random.Random(factor)
    rest = length - head
    while rest > 0:
        sizes.append(min(rng.choice([1, 2, 3, 17, 400, 3000]), rest))
        rest -= sizes[-1]
    y = _stream_in_blocks(pts.Upsample1dStream(up), x, sizes)
    expected = up(x)
    assert torch.equal(y, expected)
    if dtype == torch.float32:
        # the signal is long enough for the kernel's picks to depart from i // factor
        assert not torch.equal(expected, x.repeat_interleave(factor, dim=-1))


def test_snapshot_after_large_blocks_resumes_exactly() -> None:
    up = nn.Upsample(scale_factor=3, mode="linear")
    x = signal((1, 64, 3000), 9, torch.float32)
    stream = pts.Upsample1dStream(up)
    assert_resumes_from_snapshots(up, x, 1700, stream=stream, atol=1e-5, rtol=1.3e-6)


def test_linear_first_and_last_outputs() -> None:
    # factor 4: outputs 0 and 1 repeat the first input at once; the last two repeat the last
    # input, which only the end of the stream settles
    up = nn.Upsample(scale_factor=4, mode="linear")
    x = signal((1, 1, 5), 2)
    stream = pts.Upsample1dStream(up)
    first = stream(x[..., :1])
    assert first is not None
    torch.testing.assert_close(first, x[..., :1].expand(1, 1, 2))
    middle = stream(x[..., 1:])
    assert middle is not None
    assert middle.shape[-1] == 16
    last = stream(x[..., :0], final=True)
    assert last is not None
    torch.testing.assert_close(last, x[..., -1:].expand(1, 1, 2))


@pytest.mark.parametrize(
    ("mode", "factor", "field", "lookahead"),
    [
        ("nearest", 3, 1, Fraction(0)),
        ("nearest-exact", 2, 1, Fraction(0)),
        ("linear", 1, 1, Fraction(0)),
        ("linear", 2, 2, Fraction(1, 2)),
        ("linear", 3, 2, Fraction(2, 3)),
        ("linear", 4, 2, Fraction(1, 2)),
    ],
)
def test_timing(mode: str, factor: int, field: int, lookahead: Fraction) -> None:
    stream = pts.create_stream(nn.Upsample(scale_factor=factor, mode=mode))
    assert isinstance(stream, pts.Upsample1dStream)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (
        field,
        Fraction(factor),
        lookahead,
    )


@pytest.mark.parametrize(
    ("up", "reason"),
    [
        (nn.Upsample(size=10), "size="),
        (nn.Upsample(scale_factor=1.5), "integer factor"),
        (nn.Upsample(scale_factor=(2, 2)), "2 scale factors"),
        (nn.Upsample(scale_factor=2, mode="linear", align_corners=True), "align_corners=True"),
        (nn.Upsample(scale_factor=2, mode="bicubic"), "mode 'bicubic'"),
        (nn.Upsample(scale_factor=2, mode="area"), "mode 'area'"),
    ],
)
def test_refusals_say_why(up: nn.Upsample, reason: str) -> None:
    with pytest.raises(pts.NotStreamableError, match=f"Upsample1dStream: .*{reason}"):
        pts.Upsample1dStream(up)
    with pytest.raises(pts.NotStreamableError):
        pts.create_stream(up)


def test_refuses_other_modules_and_edges() -> None:
    with pytest.raises(pts.NotStreamableError, match=r"Upsample1dStream.*Conv1d"):
        pts.Upsample1dStream(nn.Conv1d(1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(pts.StreamError, match="edges"):
        pts.Upsample1dStream(nn.Upsample(scale_factor=2), edges="same")  # type: ignore[arg-type]


def test_valid_edges_change_nothing() -> None:
    up = nn.Upsample(scale_factor=3, mode="linear")
    stream = pts.Upsample1dStream(up, edges="valid")
    assert_streams_exactly(up, signal((1, 2, 20), 3), stream=stream)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_scripted_stream_is_exact(mode: str) -> None:
    up = nn.Upsample(scale_factor=3, mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(pts.Upsample1dStream(up))
    assert_streams_exactly(up, signal((2, 3, 25), 4), stream=scripted, partitions=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_compiled_stream_is_exact(backend: str, mode: str) -> None:
    up = nn.Upsample(scale_factor=3, mode=mode)
    compiled: Callable[..., Any] = torch.compile(pts.Upsample1dStream(up), backend=backend)
    x = torch.randn(1, 3, 40)
    blocks = [compiled(x[..., i : i + 8], final=i + 8 >= 40) for i in range(0, 40, 8)]
    torch.testing.assert_close(torch.cat([b for b in blocks if b is not None], -1), up(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear"])
def test_follows_the_block_dtype(mode: str, dtype: torch.dtype) -> None:
    up = nn.Upsample(scale_factor=3, mode=mode)
    stream = pts.Upsample1dStream(up).to(dtype)
    assert_streams_exactly(up, signal((2, 3, 30), 5, dtype), stream=stream, partitions=3)


def test_snapshot_resumes_exactly() -> None:
    up = nn.Upsample(scale_factor=5, mode="linear")
    x = signal((1, 2, 30), 6)
    assert_resumes_from_snapshots(up, x, 13, stream=pts.Upsample1dStream(up))


def test_rejected_block_leaves_stream_exact() -> None:
    up = nn.Upsample(scale_factor=2, mode="linear")
    x = signal((2, 3, 20), 7)
    stream = pts.Upsample1dStream(up)
    first = stream(x[..., :7])
    with pytest.raises(pts.StreamError, match="batch size"):
        stream(x[:1, :, 7:9])
    rest = stream(x[..., 7:], final=True)
    torch.testing.assert_close(torch.cat([first, rest], -1), up(x))


def test_repr() -> None:
    stream = pts.Upsample1dStream(nn.Upsample(scale_factor=(2.0,), mode="linear"))
    assert repr(stream) == "Upsample1dStream(scale_factor=2, mode='linear')"
    stream = pts.Upsample1dStream(nn.Upsample(scale_factor=3), edges="valid")
    assert repr(stream) == "Upsample1dStream(scale_factor=3, mode='nearest', edges='valid')"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear"])
def test_streams_exactly_on_the_test_device(mode: str, dtype: torch.dtype) -> None:
    device = device_under_test()
    for factor in [2, 3, 5]:
        up = nn.Upsample(scale_factor=factor, mode=mode)
        x = signal((2, 3, 400), factor, dtype).to(device)
        assert_streams_exactly(up, x, stream=pts.Upsample1dStream(up), partitions=3, block=64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear"])
def test_large_blocks_on_the_test_device(mode: str, dtype: torch.dtype) -> None:
    # blocks large enough for the kernel (nearest modes) and the phase-by-phase path (linear)
    device = device_under_test()
    atol, rtol = tolerance(dtype)
    for factor in [2, 3, 5]:
        up = nn.Upsample(scale_factor=factor, mode=mode)
        x = signal((1, 64, 5000), factor, dtype).to(device)
        stream = pts.Upsample1dStream(up)
        for sizes in ([5000], _blocks(5000, 1024), [1, *_blocks(4999, 2048)]):
            y = _stream_in_blocks(stream, x, sizes)
            torch.testing.assert_close(y, up(x), atol=atol, rtol=rtol)

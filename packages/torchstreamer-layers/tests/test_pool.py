"""Pool1dStream against nn.AvgPool1d, nn.MaxPool1d and nn.LPPool1d's own offline output."""

import math
import warnings
from fractions import Fraction
from typing import Any, cast

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

import torchstreamer as pts
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
)

Pool = nn.AvgPool1d | nn.MaxPool1d | nn.LPPool1d

# older torch computed LPPool1d of infinite norm as the constant 1 (powers of infinity)
LP_INF_WORKS = nn.LPPool1d(math.inf, 1)(torch.tensor([[0.5]])).item() == 0.5


@st.composite
def pools(draw: st.DrawFn) -> tuple[Pool, int]:
    """A random pooling layer, every option drawn, and a signal length it accepts."""
    kind = draw(st.sampled_from(["avg", "max", "lp"]))
    kernel = draw(st.integers(1, 6))
    # None means the kernel size, whatever torch's annotations say
    stride: Any = draw(st.one_of(st.none(), st.integers(1, 9)))
    ceil_mode = draw(st.booleans())
    # torch allows padding up to half the kernel
    padding = draw(st.integers(0, kernel // 2))
    pool: Pool
    if kind == "avg":
        pool = nn.AvgPool1d(kernel, stride, padding, ceil_mode, draw(st.booleans()))
        span = kernel
    elif kind == "max":
        dilation = draw(st.integers(1, 3))
        pool = nn.MaxPool1d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        span = dilation * (kernel - 1) + 1
    else:
        norm = draw(st.sampled_from([1.0, 2.0, 3.0, math.inf] if LP_INF_WORKS else [1.0, 2.0, 3.0]))
        pool = nn.LPPool1d(norm, kernel, stride, ceil_mode)
        span, padding = kernel, 0
    length = draw(st.integers(max(span - 2 * padding, 1), span + 24))
    return pool, length


def signal(pool: nn.Module, shape: tuple[int, ...], seed: int) -> Tensor:
    """float64 test data that no continuation of the minimal-latency checker can match early.

    Max pools (and LP pools of infinite norm) see a window's largest value: the data lies
    far below the checker's random continuations, so no window's result is known before its
    last sample. LP pools also take fractional powers, so their data is small and positive.
    """
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    if isinstance(pool, nn.LPPool1d):
        return (x.abs() + 0.1) * 0.01
    if isinstance(pool, nn.MaxPool1d):
        return x - 10.0
    return x


@given(pools(), st.booleans(), st.integers(0, 2**16))
def test_streams_exactly_float64(case: tuple[Pool, int], batched: bool, seed: int) -> None:
    pool, length = case
    x = signal(pool, (2, 3, length) if batched else (3, length), seed)
    assert_streams_exactly(pool, x, stream=pts.Pool1dStream(pool), partitions=4, seed=seed)


@given(pools(), st.integers(0, 2**16))
def test_streams_exactly_float32(case: tuple[Pool, int], seed: int) -> None:
    pool, length = case
    x = signal(pool, (2, 2, length), seed).float()
    assert_streams_exactly(pool, x, partitions=3, seed=seed)


@given(pools(), st.integers(0, 2**16))
def test_minimal_latency(case: tuple[Pool, int], seed: int) -> None:
    pool, length = case
    x = signal(pool, (2, length), seed)
    assert_minimal_latency(pool, x, stream=pts.Pool1dStream(pool), seed=seed)


@given(pools(), st.integers(0, 2**16))
def test_valid_edges_ignore_padding_and_ceil_mode(case: tuple[Pool, int], seed: int) -> None:
    pool, length = case
    stream = pts.Pool1dStream(pool, edges="valid")
    x = signal(pool, (1, 2, length + stream.span), seed)
    if isinstance(pool, nn.AvgPool1d):
        expected = F.avg_pool1d(x, pool.kernel_size, pool.stride)
    elif isinstance(pool, nn.MaxPool1d):
        expected = F.max_pool1d(x, pool.kernel_size, pool.stride, 0, pool.dilation)
    else:
        expected = F.lp_pool1d(x, pool.norm_type, pool.kernel_size, pool.stride)
    assert_streams_exactly(pool, x, stream=stream, expected=expected, partitions=3, seed=seed)


@pytest.mark.parametrize(
    "pool",
    [
        nn.AvgPool1d(5, 3, 2, ceil_mode=True, count_include_pad=False),
        nn.MaxPool1d(4, 3, 2, dilation=2, ceil_mode=True),
        nn.LPPool1d(2, 3, 2, ceil_mode=True),
    ],
)
def test_output_length_is_the_modules(pool: Pool) -> None:
    stream = pts.Pool1dStream(pool)
    for length in range(1, 30):
        try:
            expected = pool(torch.ones(1, 1, length)).shape[-1]
        except RuntimeError:
            expected = 0
        assert stream.output_length(length) == expected, length


def test_seed_network_pool_repr() -> None:
    # the reprs torch-streamer 0.0.2 printed
    assert repr(pts.create_stream(nn.AvgPool1d(2))) == "AvgPool1dStream(kernel_size=2, stride=2)"
    assert repr(pts.Pool1dStream(nn.MaxPool1d(3, 1))) == "MaxPool1dStream(kernel_size=3, stride=1)"
    assert repr(pts.Pool1dStream(nn.LPPool1d(2, 4))) == "LPPool1dStream(kernel_size=4, stride=4)"
    stream = pts.Pool1dStream(nn.MaxPool1d(3, 2, 1, dilation=2, ceil_mode=True), edges="valid")
    assert repr(stream) == (
        "MaxPool1dStream(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True, "
        "edges='valid')"
    )


@pytest.mark.parametrize(
    ("pool", "field", "rate", "lookahead"),
    [
        (nn.AvgPool1d(2), 2, Fraction(1, 2), Fraction(1)),
        (nn.AvgPool1d(3, 1, 1), 3, Fraction(1), Fraction(1)),
        (nn.MaxPool1d(3, 2, 1, dilation=2), 5, Fraction(1, 2), Fraction(3)),
        (nn.LPPool1d(2, 4, 2), 4, Fraction(1, 2), Fraction(3)),
        (nn.MaxPool1d(2, 5), 2, Fraction(1, 5), Fraction(1)),
    ],
)
def test_timing(pool: Pool, field: int, rate: Fraction, lookahead: Fraction) -> None:
    stream = pts.create_stream(pool)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (field, rate, lookahead)


def test_non_pool_is_invalid_pool_module() -> None:
    with pytest.raises(ValueError, match=r"^invalid_pool_module: .*Linear"):
        pts.Pool1dStream(cast(Any, nn.Linear(2, 2)))


def test_return_indices_is_refused() -> None:
    with pytest.raises(pts.NotStreamableError, match="return_indices"):
        pts.create_stream(nn.MaxPool1d(2, return_indices=True))


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool1d(4), nn.AdaptiveMaxPool1d(1)])
def test_adaptive_pools_are_refused(pool: nn.Module) -> None:
    with pytest.raises(pts.NotStreamableError, match=rf"{type(pool).__name__}.*register_streamer"):
        pts.create_stream(pool)


@pytest.mark.parametrize(
    "pool",
    [
        nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.MaxPool1d(3, 2, 1, dilation=2, ceil_mode=True),
        nn.LPPool1d(2.0, 3, 2, ceil_mode=True),
    ],
)
def test_scripted_stream_is_exact(pool: Pool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted: Any = torch.jit.script(pts.Pool1dStream(pool))
    x = signal(pool, (2, 3, 37), 0)
    assert_streams_exactly(pool, x, stream=scripted, partitions=3)


def test_compiled_stream_is_exact() -> None:
    pool = nn.AvgPool1d(4, 2, 2, ceil_mode=True)
    compiled: Any = torch.compile(pts.Pool1dStream(pool), backend="eager")
    x = torch.randn(1, 3, 63)
    blocks = [compiled(x[..., i : i + 16], final=i + 16 >= 63) for i in range(0, 63, 16)]
    torch.testing.assert_close(torch.cat(blocks, -1), pool(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pool", [nn.AvgPool1d(3, 2, 1), nn.MaxPool1d(3, 2, 1), nn.LPPool1d(2, 2)])
def test_follows_block_dtype(pool: Pool, dtype: torch.dtype) -> None:
    x = (torch.rand(2, 30) + 0.5).to(dtype)
    assert_streams_exactly(pool, x, stream=pts.Pool1dStream(pool), partitions=2)


def test_snapshot_resumes_exactly() -> None:
    pool = nn.AvgPool1d(5, 2, 2, ceil_mode=True)
    x = torch.randn(2, 40, dtype=torch.float64)
    assert_resumes_from_snapshots(pool, x, 13, stream=pts.Pool1dStream(pool))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "pool",
    [
        nn.AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False),
        nn.MaxPool1d(3, 2, 1, dilation=2, ceil_mode=True),
        nn.LPPool1d(2, 3, 2, ceil_mode=True),
    ],
)
def test_streams_exactly_on_cuda(pool: Pool, dtype: torch.dtype) -> None:
    x = signal(pool, (2, 3, 45), 3).to("cuda", dtype)
    assert_streams_exactly(pool, x, stream=pts.Pool1dStream(pool), partitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted: Any = torch.jit.script(pts.Pool1dStream(pool))
    assert_streams_exactly(pool, x, stream=scripted, partitions=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 1), (4, 2), (5, 3)])
def test_long_blocks_of_average_pooling_give_the_kernels_samples(
    kernel: int, stride: int, dtype: torch.dtype
) -> None:
    # long blocks take the sum of shifted views on the CPU: the same additions in the same
    # order as avg_pool1d, so the same samples, not only close ones
    pool = nn.AvgPool1d(kernel, stride)
    x = torch.randn(2, 3, 500).to(dtype)
    stream = pts.Pool1dStream(pool)
    y = torch.cat([stream(x[..., :250]), stream(x[..., 250:], final=True)], dim=-1)
    assert torch.equal(y, pool(x))

"""ResampleStream against the offline Resample module's own output."""

from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.contrib import Resample, ResampleStream
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
)

SMALL_PAIRS = [(1, 2), (2, 1), (3, 2), (2, 3), (5, 7), (7, 5), (1, 3), (4, 4)]


@st.composite
def resamplers(draw: st.DrawFn) -> Resample:
    """A Resample of a small rate pair (scaled, so that the rates reduce) and random options."""
    orig_freq, new_freq = draw(st.sampled_from(SMALL_PAIRS))
    scale = draw(st.sampled_from([1, 1000]))
    return Resample(
        orig_freq * scale,
        new_freq * scale,
        lowpass_filter_width=draw(st.integers(1, 6)),
        rolloff=draw(st.sampled_from([0.99, 0.9, 0.75, 1.0])),
        resampling_method=draw(st.sampled_from(["sinc_interp_hann", "sinc_interp_kaiser"])),
    )


@given(resamplers(), st.sampled_from([(2, 3), (3,), ()]), st.integers(0, 40), st.integers(0, 2**16))
def test_streams_exactly_float64(
    resample: Resample, leading: tuple[int, ...], length: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*leading, length, dtype=torch.float64, generator=generator)
    assert_streams_exactly(resample, x, stream=ResampleStream(resample), partitions=3, seed=seed)


@given(resamplers(), st.integers(0, 40), st.integers(0, 2**16))
def test_streams_exactly_float32(resample: Resample, length: int, seed: int) -> None:
    x = torch.randn(2, 2, length, generator=torch.Generator().manual_seed(seed))
    assert_streams_exactly(resample, x, partitions=2, seed=seed)


@pytest.mark.parametrize(("orig_freq", "new_freq"), [(44100, 48000), (48000, 44100)])
def test_streams_a_realistic_pair(orig_freq: int, new_freq: int) -> None:
    resample = Resample(orig_freq, new_freq)
    x = torch.randn(2, 400, dtype=torch.float64)
    assert_streams_exactly(resample, x, partitions=3, block=160)


@pytest.mark.parametrize(
    ("orig_freq", "new_freq", "method", "rolloff"),
    [
        (1, 2, "sinc_interp_hann", 0.99),
        (3, 2, "sinc_interp_hann", 0.99),
        (2, 3, "sinc_interp_kaiser", 0.99),
        (7, 5, "sinc_interp_hann", 0.99),
        # outputs on an input depend on it alone, the ones between on a dozen inputs ahead
        (1, 2, "sinc_interp_hann", 1.0),
        (2, 5, "sinc_interp_kaiser", 1.0),
    ],
)
def test_minimal_latency(orig_freq: int, new_freq: int, method: str, rolloff: float) -> None:
    resample = Resample(orig_freq, new_freq, resampling_method=method, rolloff=rolloff)
    x = torch.randn(1, 45, dtype=torch.float64)
    assert_minimal_latency(resample, x, stream=ResampleStream(resample))


@given(resamplers(), st.integers(0, 2**16))
def test_minimal_latency_of_any_filter(resample: Resample, seed: int) -> None:
    x = torch.randn(1, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert_minimal_latency(resample, x, stream=ResampleStream(resample), seed=seed)


@pytest.mark.parametrize(
    ("rates", "field", "rate", "lookahead"),
    [
        # 1 -> 2: cutoff 0.99, width ceil(6 / 0.99) = 7; phase 0 reads inputs n - 6 .. n + 6
        # (|k| < 6.06), phase 1 (at n + 1/2) reads n - 5 .. n + 6
        ((1, 2), 13, Fraction(2), Fraction(6)),
        # 2 -> 1: cutoff 0.99, taps |k| < 12 / 0.99 = 12.12 around input 2n: 25 of them
        ((16000, 8000), 25, Fraction(1, 2), Fraction(12)),
        # 3 -> 2: cutoff 1.98, taps |k - 1.5 i| < 18 / 1.98 = 9.09: -9..9 and -7..10
        ((3, 2), 19, Fraction(2, 3), Fraction(9)),
        # 2 -> 3: taps |k - 2i/3| < 6.06: -6..6, -5..6, -4..7; lookaheads 6, 16/3, 17/3
        ((32000, 48000), 13, Fraction(3, 2), Fraction(6)),
        ((8000, 8000), 1, Fraction(1), Fraction(0)),
    ],
)
def test_timing(rates: tuple[int, int], field: int, rate: Fraction, lookahead: Fraction) -> None:
    stream = ResampleStream(*rates)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (field, rate, lookahead)


def test_compatible_with_the_0_0_2_constructor_and_layouts() -> None:
    stream = ResampleStream(16000, 12000, "sinc_interp_kaiser", 4, 0.9, 10.0)
    module = Resample(
        16000,
        12000,
        lowpass_filter_width=4,
        rolloff=0.9,
        resampling_method="sinc_interp_kaiser",
        beta=10.0,
    )
    torch.testing.assert_close(stream.module.kernel, module.kernel, atol=0, rtol=0)
    x = torch.randn(100)
    y = [stream(x[i : i + 30], final=i + 30 >= 100) for i in range(0, 100, 30)]
    assert all(block is None or block.dim() == 1 for block in y)
    torch.testing.assert_close(torch.cat([b for b in y if b is not None]), module(x))
    assert stream(torch.randn(3, 40)).shape[0] == 3


def test_create_stream_finds_the_handler_and_shares_the_module() -> None:
    resample = Resample(8000, 11025)
    stream = pts.create_stream(resample)
    assert isinstance(stream, ResampleStream)
    assert stream.module is resample
    assert ResampleStream.from_module(resample).module is resample
    assert pts.ResampleStream is ResampleStream
    assert repr(stream) == "ResampleStream(8000, 11025)"


def test_edges_valid_streams_the_padded_module_too() -> None:
    resample = Resample(3, 2)
    x = torch.randn(2, 40)
    assert_streams_exactly(resample, x, edges="valid", partitions=2)
    with pytest.raises(pts.StreamError, match="edges"):
        ResampleStream(resample, edges="same")  # type: ignore[arg-type]


def test_in_a_network_with_other_layers() -> None:
    net = nn.Sequential(
        nn.Conv1d(1, 2, 3, padding=1), Resample(2, 3), nn.GELU(), nn.Conv1d(2, 1, 4, stride=2)
    ).double()
    x = torch.randn(2, 1, 50, dtype=torch.float64)
    assert_streams_exactly(net, x, partitions=3)
    assert_minimal_latency(net, x[0])


def test_wrong_arguments_and_blocks_are_refused() -> None:
    resample = Resample(1, 2)
    with pytest.raises(TypeError, match="not both"):
        ResampleStream(resample, 2)
    with pytest.raises(TypeError, match="not both"):
        ResampleStream(resample, rolloff=0.5)
    with pytest.raises(TypeError, match="target_fs"):
        ResampleStream(16000)
    stream = ResampleStream(resample)
    with pytest.raises(pts.StreamError, match=r"expected a \[T\], \[C, T\] or \[B, C, T\] block"):
        stream(torch.randn(1, 1, 1, 4))
    with pytest.raises(pts.StreamError, match="floating-point"):
        stream(torch.ones(2, 4, dtype=torch.int64))


def test_a_rejected_block_leaves_the_stream_exact() -> None:
    resample = Resample(3, 5)
    x = torch.randn(2, 40, dtype=torch.float64)
    stream = ResampleStream(resample)
    head = stream(x[:, :11])
    with pytest.raises(pts.StreamError, match=r"float64 blocks on cpu, got torch\.float32"):
        stream(x[:, 11:15].float())
    with pytest.raises(pts.StreamError, match="batch size"):
        stream(x[:, 11:15].expand(3, 2, 4))
    tail = stream(x[:, 11:], final=True)
    torch.testing.assert_close(torch.cat([head, tail], -1), resample(x), atol=1e-12, rtol=0)


def test_moves_and_casts_in_mid_stream() -> None:
    resample = Resample(3, 5)
    x = torch.randn(2, 40, dtype=torch.float64)
    stream = ResampleStream(resample)
    head = stream(x[:, :13].float())
    stream.double()
    tail = stream(x[:, 13:], final=True)
    assert tail.dtype == torch.float64
    torch.testing.assert_close(torch.cat([head.double(), tail], -1), resample(x), atol=1e-5, rtol=0)


def test_state_stays_bounded_at_one_sample_blocks() -> None:
    stream = ResampleStream(7, 5)
    for _ in range(500):
        stream(torch.randn(1, 1))
    assert stream.buffer.held <= stream.receptive_field + stream.period_in
    assert stream.buffer.data.size(-1) <= 4 * (stream.receptive_field + stream.period_in)


def test_snapshot_resumes_exactly() -> None:
    resample = Resample(2, 3)
    x = torch.randn(1, 60, dtype=torch.float64)
    assert_resumes_from_snapshots(
        resample, x, 17, stream=ResampleStream(resample), atol=1e-12, rtol=0
    )


def test_scripted_stream_is_exact(no_script_warning: None) -> None:
    resample = Resample(5, 3, resampling_method="sinc_interp_kaiser")
    scripted = torch.jit.script(ResampleStream(resample))
    x = torch.randn(2, 3, 41, dtype=torch.float64)
    assert_streams_exactly(resample, x, stream=scripted, partitions=3)  # type: ignore[arg-type]
    one = x[0, 0]
    y = [scripted(one[:20]), scripted(one[20:], final=True)]
    torch.testing.assert_close(torch.cat(y), resample(one))
    scripted(x[:, :, :5])
    with pytest.raises(torch.jit.Error, match="dtype or device changed"):
        scripted(x[:, :, 5:9].float())


def test_compiled_stream_is_exact() -> None:
    resample = Resample(3, 4)
    compiled = torch.compile(ResampleStream(resample), backend="eager")
    x = torch.randn(1, 2, 64)
    blocks = [compiled(x[..., i : i + 16], final=i + 16 >= 64) for i in range(0, 64, 16)]
    torch.testing.assert_close(torch.cat([b for b in blocks if b is not None], -1), resample(x))


def test_runs_on_the_device_under_test(device: torch.device) -> None:
    resample = Resample(44100, 16000).to(device)
    stream = ResampleStream(resample)
    x = torch.randn(2, 1, 300, device=device)
    assert_streams_exactly(resample, x, stream=stream, partitions=2, block=64)
    x64 = x.double()
    assert_streams_exactly(resample, x64, stream=stream, partitions=2, block=64)

"""The offline Resample module against references it did not compute."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import torchstreamer as pts
from torchstreamer.contrib.audio import Resample

# small co-prime pairs in both directions, and pairs that reduce (16000 -> 24000 is 2 -> 3)
RATE_PAIRS = [(1, 2), (2, 1), (3, 2), (2, 3), (5, 7), (7, 5), (1, 3), (16000, 24000)]


def windowed_sinc_sum(
    x: np.ndarray,
    orig_freq: int,
    new_freq: int,
    *,
    zero_crossings: int = 6,
    rolloff: float = 0.99,
    kaiser_beta: float | None = None,
) -> np.ndarray:
    """Band-limited interpolation written as the plain sum over inputs, one output at a time.

    Output ``m`` stands at input time ``m * orig_freq / new_freq``; every input within
    ``zero_crossings`` periods of the cutoff contributes through the windowed sinc. Inputs
    beyond the signal are zero, which is what the module's padding amounts to.
    """
    gcd = math.gcd(orig_freq, new_freq)
    period_in, period_out = orig_freq // gcd, new_freq // gcd
    cutoff = rolloff * min(period_in, period_out)
    outputs = math.ceil(len(x) * period_out / period_in)
    y = np.zeros(outputs)
    for m in range(outputs):
        for k, value in enumerate(x):
            t = cutoff * (k / period_in - m / period_out)
            if abs(t) >= zero_crossings:
                continue
            sinc = 1.0 if t == 0 else math.sin(math.pi * t) / (math.pi * t)
            if kaiser_beta is None:
                window = math.cos(math.pi * t / (2 * zero_crossings)) ** 2
            else:
                shape = math.sqrt(1 - (t / zero_crossings) ** 2)
                window = float(np.i0(kaiser_beta * shape) / np.i0(kaiser_beta))
            y[m] += value * sinc * window * cutoff / period_in
    return y


@pytest.mark.parametrize(("orig_freq", "new_freq"), RATE_PAIRS)
@pytest.mark.parametrize("method", ["sinc_interp_hann", "sinc_interp_kaiser"])
def test_matches_the_plain_windowed_sinc_sum(orig_freq: int, new_freq: int, method: str) -> None:
    x = torch.randn(23, dtype=torch.float64, generator=torch.Generator().manual_seed(orig_freq))
    kaiser = method == "sinc_interp_kaiser"
    resample = Resample(orig_freq, new_freq, resampling_method=method, beta=8.5)
    expected = windowed_sinc_sum(
        x.numpy(), orig_freq, new_freq, kaiser_beta=8.5 if kaiser else None
    )
    torch.testing.assert_close(resample(x), torch.from_numpy(expected), atol=1e-12, rtol=1e-12)


@given(
    st.sampled_from(RATE_PAIRS),
    st.integers(1, 8),
    st.floats(0.5, 1.0),
    st.integers(0, 20),
)
def test_filter_options_match_the_plain_sum(
    rates: tuple[int, int], zero_crossings: int, rolloff: float, length: int
) -> None:
    x = torch.randn(length, dtype=torch.float64, generator=torch.Generator().manual_seed(length))
    resample = Resample(*rates, lowpass_filter_width=zero_crossings, rolloff=rolloff)
    expected = windowed_sinc_sum(x.numpy(), *rates, zero_crossings=zero_crossings, rolloff=rolloff)
    torch.testing.assert_close(resample(x), torch.from_numpy(expected), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(
    ("orig_freq", "new_freq", "method", "error"),
    [
        (1, 2, "sinc_interp_hann", 2e-3),
        (2, 3, "sinc_interp_hann", 2e-3),
        (3, 2, "sinc_interp_hann", 2e-3),
        (1, 2, "sinc_interp_kaiser", 1e-6),
        (8000, 44100, "sinc_interp_kaiser", 1e-6),
    ],
)
def test_a_low_sine_lands_on_the_analytic_sine(
    orig_freq: int, new_freq: int, method: str, error: float
) -> None:
    # 0.02 cycles per input sample: deep in the passband of every filter here
    frequency, phase = 0.02, 0.3
    x = torch.sin(2 * math.pi * frequency * torch.arange(800, dtype=torch.float64) + phase)
    resample = Resample(orig_freq, new_freq, resampling_method=method)
    y = resample(x)
    times = torch.arange(y.numel(), dtype=torch.float64) * orig_freq / new_freq
    expected = torch.sin(2 * math.pi * frequency * times + phase)
    # away from the edges, where the zero padding cuts the sine off
    edge = 4 * resample.width * resample.period_out // resample.period_in + 4
    assert (y - expected)[edge:-edge].abs().max() < error
    assert (y - expected).abs().max() > 0.01, "the padded edges must show"


@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 50))
def test_output_length_is_the_ceiling(orig_freq: int, new_freq: int, length: int) -> None:
    y = Resample(orig_freq, new_freq)(torch.zeros(2, length))
    assert y.shape == (2, -(-length * new_freq // orig_freq))


@pytest.mark.parametrize(("orig_freq", "new_freq"), [(1, 2), (1, 3), (2, 5)])
def test_full_band_upsampling_passes_every_input_through(orig_freq: int, new_freq: int) -> None:
    # with rolloff 1 the sinc's zeros fall on the other inputs: the outputs that stand on an
    # input are that input, exactly
    x = torch.randn(3, 31, dtype=torch.float64)
    y = Resample(orig_freq, new_freq, rolloff=1.0)(x)
    torch.testing.assert_close(y[:, ::new_freq], x[:, ::orig_freq], atol=1e-15, rtol=0)


def test_equal_rates_give_the_input_back() -> None:
    x = torch.randn(2, 30)
    resample = Resample(22050, 22050)
    assert resample(x) is x
    assert resample.support() == [(0, 0)]


def test_every_layout_and_channel_is_resampled_on_its_own() -> None:
    resample = Resample(3, 5).double()
    x = torch.randn(2, 3, 17, dtype=torch.float64)
    y = resample(x)
    assert y.shape == (2, 3, 29)
    for b in range(2):
        torch.testing.assert_close(resample(x[b]), y[b], atol=1e-13, rtol=0)
        for c in range(3):
            torch.testing.assert_close(resample(x[b, c]), y[b, c], atol=1e-13, rtol=0)
    assert resample(torch.zeros(4, 0)).shape == (4, 0)
    assert resample(torch.zeros(0, 5)).shape == (0, 9)


def test_float32_follows_float64() -> None:
    resample = Resample(5, 7)
    x = torch.randn(3, 40, dtype=torch.float64)
    y = resample(x.float())
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), resample(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("orig_freq", "new_freq"), RATE_PAIRS)
def test_the_filter_is_zero_exactly_outside_its_support(orig_freq: int, new_freq: int) -> None:
    resample = Resample(orig_freq, new_freq)
    kernel = resample.kernel[:, 0]
    for phase, (first, last) in enumerate(resample.support()):
        taps = kernel[phase]
        # support offsets are input indices relative to window start + width
        inside = torch.zeros_like(taps, dtype=torch.bool)
        inside[first + resample.width : last + resample.width + 1] = True
        assert torch.all(taps[~inside] == 0)
        assert taps[first + resample.width] != 0
        assert taps[last + resample.width] != 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"orig_freq": 0, "new_freq": 2}, ValueError, "orig_freq must be positive"),
        ({"orig_freq": 2, "new_freq": -1}, ValueError, "new_freq must be positive"),
        ({"orig_freq": 44100.0, "new_freq": 48000}, TypeError, "orig_freq must be an integer"),
        ({"orig_freq": 1, "new_freq": 2, "lowpass_filter_width": 0}, ValueError, "lowpass"),
        ({"orig_freq": 1, "new_freq": 2, "rolloff": 0.0}, ValueError, "rolloff"),
        ({"orig_freq": 1, "new_freq": 2, "resampling_method": "linear"}, ValueError, "method"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Resample(**kwargs)  # type: ignore[arg-type]


def test_repr_names_the_rates_and_changed_options() -> None:
    assert repr(Resample(44100, 48000)) == "Resample(44100, 48000)"
    assert repr(Resample(2, 1, rolloff=0.9)) == "Resample(2, 1, rolloff=0.9)"


def test_scripted_module_is_the_module(no_script_warning: None) -> None:
    resample = Resample(5, 3, resampling_method="sinc_interp_kaiser")
    scripted = torch.jit.script(resample)
    for shape in [(40,), (2, 40), (2, 3, 40)]:
        x = torch.randn(shape)
        torch.testing.assert_close(scripted(x), resample(x))


def test_kernel_is_not_saved_and_follows_the_module() -> None:
    resample = Resample(2, 3)
    assert resample.state_dict() == {}
    assert resample.kernel.dtype == torch.float64
    assert resample.float().kernel.dtype == torch.float32
    assert pts.Resample is Resample


def test_agrees_with_torchaudio(device: torch.device) -> None:
    torchaudio = pytest.importorskip("torchaudio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resample_reference = torchaudio.functional.resample
    x = torch.randn(2, 3, 500, dtype=torch.float64, device=device)
    # float64 signals only: torchaudio computes a float32 signal's filter in float32, a few 1e-5
    # away from the float64 filter that this module casts down; and its Kaiser window keeps
    # beta and the window's normalisation in float32 even for float64 signals
    for (orig_freq, new_freq), method, tolerance in [
        ((44100, 48000), "sinc_interp_hann", 1e-10),
        ((3, 7), "sinc_interp_hann", 1e-10),
        ((48000, 16000), "sinc_interp_kaiser", 1e-6),
    ]:
        expected = resample_reference(x, orig_freq, new_freq, resampling_method=method)
        y = Resample(orig_freq, new_freq, resampling_method=method).to(device)(x)
        torch.testing.assert_close(y, expected, atol=tolerance, rtol=tolerance)

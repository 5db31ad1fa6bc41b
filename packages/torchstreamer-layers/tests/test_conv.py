"""Conv1dStream against nn.Conv1d's own offline output."""

import copy
import io
import warnings
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.testing import assert_minimal_latency, assert_streams_exactly


@st.composite
def convs(draw: st.DrawFn) -> tuple[nn.Conv1d, int]:
    """A random Conv1d and a signal length it accepts."""
    groups = draw(st.sampled_from([1, 2]))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 6))
    dilation = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 9))
    span = dilation * (kernel - 1) + 1
    padding: int | str = draw(
        st.one_of(st.integers(0, span + 1), st.sampled_from(["valid", "same"]))
    )
    if padding == "same":
        stride = 1
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate"]))
    conv = nn.Conv1d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=mode,
    )
    pad = span // 2 + 1 if isinstance(padding, str) else padding
    # reflect needs more samples than padding; every mode needs one full window
    shortest = max(span - 2 * (0 if isinstance(padding, str) else padding), pad + 1, 1)
    length = draw(st.integers(shortest, shortest + 40))
    return conv, length


@given(convs(), st.booleans(), st.integers(0, 2**16))
def test_streams_exactly_float64(case: tuple[nn.Conv1d, int], batched: bool, seed: int) -> None:
    conv, length = case
    conv = conv.double()
    shape = (2, conv.in_channels, length) if batched else (conv.in_channels, length)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert_streams_exactly(conv, x, stream=pts.Conv1dStream(conv), partitions=4, seed=seed)


@given(convs(), st.integers(0, 2**16))
def test_streams_exactly_float32(case: tuple[nn.Conv1d, int], seed: int) -> None:
    conv, length = case
    x = torch.randn(2, conv.in_channels, length, generator=torch.Generator().manual_seed(seed))
    assert_streams_exactly(conv, x, partitions=3, seed=seed)


@given(convs(), st.integers(0, 2**16))
def test_minimal_latency(case: tuple[nn.Conv1d, int], seed: int) -> None:
    conv, length = case
    conv = conv.double()
    x = torch.randn(conv.in_channels, length, dtype=torch.float64)
    assert_minimal_latency(conv, x, stream=pts.Conv1dStream(conv), seed=seed)


@given(convs(), st.integers(0, 2**16))
def test_valid_edges_ignore_padding(case: tuple[nn.Conv1d, int], seed: int) -> None:
    conv, length = case
    conv = conv.double()
    span = conv.dilation[0] * (conv.kernel_size[0] - 1) + 1
    x = torch.randn(1, conv.in_channels, length + span, dtype=torch.float64)
    expected = F.conv1d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)
    stream = pts.Conv1dStream(conv, edges="valid")
    assert_streams_exactly(conv, x, stream=stream, expected=expected, partitions=3, seed=seed)


def test_seed_example_runs_as_written() -> None:
    block_size = 100
    conv = nn.Conv1d(64, 128, 3, stride=2)
    stream = pts.Conv1dStream(conv)
    x = torch.randn([64, 1000])
    yc = conv(x)
    ys = torch.cat(
        [stream(x[..., i : i + block_size]) for i in range(0, x.shape[-1], block_size)], dim=-1
    )
    assert torch.allclose(yc, ys, atol=1e-6)


@pytest.mark.parametrize(
    ("conv", "field", "rate", "lookahead"),
    [
        (nn.Conv1d(1, 1, 5, padding=2), 5, Fraction(1), Fraction(2)),
        (nn.Conv1d(1, 1, 5), 5, Fraction(1), Fraction(4)),
        (nn.Conv1d(1, 1, 3, dilation=4, padding="same"), 9, Fraction(1), Fraction(4)),
        (nn.Conv1d(1, 1, 4, stride=2, padding=1), 4, Fraction(1, 2), Fraction(2)),
        (nn.Conv1d(1, 1, 2, stride=5), 2, Fraction(1, 5), Fraction(1)),
        (nn.Conv1d(1, 1, 1), 1, Fraction(1), Fraction(0)),
    ],
)
def test_timing(conv: nn.Conv1d, field: int, rate: Fraction, lookahead: Fraction) -> None:
    stream = pts.create_stream(conv)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (field, rate, lookahead)


def test_circular_padding_is_refused() -> None:
    conv = nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")
    with pytest.raises(pts.NotStreamableError, match="circular"):
        pts.create_stream(conv)
    # ignoring the padding is well defined
    assert_streams_exactly(
        conv,
        x := torch.randn(1, 20),
        stream=pts.Conv1dStream(conv, edges="valid"),
        expected=F.conv1d(x, conv.weight, conv.bias),
    )


def test_wrong_channels_message_names_stream_and_module() -> None:
    stream = pts.Conv1dStream(nn.Conv1d(4, 8, 5))
    with pytest.raises(pts.StreamError) as caught:
        stream(torch.randn(3, 10))
    assert str(caught.value) == (
        "Conv1dStream: expected 4 input channels (Conv1d(4, 8, kernel_size=(5,), stride=(1,))), "
        "got 3"
    )


def test_rejected_block_leaves_stream_exact() -> None:
    conv = nn.Conv1d(2, 3, 4, padding=2).double()
    x = torch.randn(2, 30, dtype=torch.float64)
    stream = pts.Conv1dStream(conv)
    first = stream(x[:, :7])
    with pytest.raises(pts.StreamError):
        stream(torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(pts.StreamError):
        stream(x[:, 7:9].float())
    rest = stream(x[:, 7:], final=True)
    torch.testing.assert_close(torch.cat([first, rest], -1), conv(x))


def test_follows_weights_replaced_between_streams() -> None:
    # a new parameter, new storage for the old one, a new dtype: each must reach the stream,
    # which keeps a matrix view of the weight for its one-sample blocks
    conv = nn.Conv1d(2, 3, 3, padding=1).double()
    stream = pts.create_stream(conv)
    x = torch.randn(2, 20, dtype=torch.float64)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.weight.data = torch.randn_like(conv.weight)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.float()
    assert_streams_exactly(conv, x.float(), stream=stream, partitions=2)


def test_shares_weights_with_module() -> None:
    conv = nn.Conv1d(1, 2, 3, padding=1).double()
    stream = pts.create_stream(conv)
    assert not list(stream.parameters()) or all(
        any(p is q for q in conv.parameters()) for p in stream.parameters()
    )
    x = torch.randn(1, 12, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.mul_(3.0)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)


@pytest.mark.parametrize("style", ["parametrization", "legacy"])
def test_weight_norm_follows_updates(style: str) -> None:
    conv = nn.Conv1d(2, 3, 3, padding=1).double()
    if style == "parametrization":
        conv = nn.utils.parametrizations.weight_norm(conv)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            conv = nn.utils.weight_norm(conv)
    stream = pts.Conv1dStream(conv)
    x = torch.randn(2, 25, dtype=torch.float64)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    originals = [p for name, p in conv.named_parameters() if "bias" not in name]
    with torch.no_grad():
        for p in originals:
            p.add_(0.5)
    # the cached weight must not go stale
    assert_streams_exactly(conv, x, stream=stream, partitions=2)


def test_scripted_stream_is_exact() -> None:
    conv = nn.Conv1d(3, 4, 5, stride=2, padding=2, padding_mode="reflect").double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(pts.Conv1dStream(conv))
    x = torch.randn(2, 3, 41, dtype=torch.float64)
    assert_streams_exactly(conv, x, stream=scripted, partitions=3)  # type: ignore[arg-type]


def test_compiled_stream_is_exact() -> None:
    conv = nn.Conv1d(3, 4, 3, padding=1)
    stream = pts.Conv1dStream(conv)
    compiled = torch.compile(stream, backend="eager")
    x = torch.randn(1, 3, 64)
    blocks = [compiled(x[..., i : i + 16], final=i + 16 >= 64) for i in range(0, 64, 16)]
    torch.testing.assert_close(torch.cat(blocks, -1), conv(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_follows_module_dtype(dtype: torch.dtype) -> None:
    conv = nn.Conv1d(2, 2, 3, padding=1)
    stream = pts.Conv1dStream(conv).to(dtype)
    assert conv.weight.dtype == dtype
    x = torch.randn(2, 30).to(dtype)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)


def test_snapshot_resumes_exactly() -> None:
    conv = nn.Conv1d(1, 2, 5, padding=2).double()
    x = torch.randn(1, 40, dtype=torch.float64)
    stream = pts.Conv1dStream(conv)
    head = stream(x[:, :13])
    fork = copy.deepcopy(stream)
    saved = io.BytesIO()
    torch.save(stream, saved)
    saved.seek(0)
    loaded = torch.load(saved, weights_only=False)
    expected = conv(x)
    for resumed in (stream, fork, loaded):
        tail = resumed(x[:, 13:], final=True)
        torch.testing.assert_close(torch.cat([head, tail], -1), expected)


def test_repr_and_edges_validation() -> None:
    stream = pts.Conv1dStream(nn.Conv1d(64, 128, 3, stride=2))
    assert repr(stream) == "Conv1dStream(64, 128, kernel_size=3, stride=2, padding=0)"
    with pytest.raises(pts.StreamError, match="edges"):
        pts.Conv1dStream(nn.Conv1d(1, 1, 3), edges="same")  # type: ignore[arg-type]
    with pytest.raises(pts.NotStreamableError, match="Conv1d"):
        pts.Conv1dStream(nn.Linear(2, 2))  # type: ignore[arg-type]

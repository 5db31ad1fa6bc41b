"""ConvTranspose1dStream against nn.ConvTranspose1d's own offline output."""

import sys
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import torchstreamer as pts
from torchstreamer.core import Edges
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
)

# pytest imports test modules with importlib: the shared helpers beside this file need the path
sys.path.insert(0, str(Path(__file__).parent))
from strategies_upsampling import (
    assert_emits_once_determined,
    conv_transposes,
    device_under_test,
    signal,
)


def unpadded(conv: nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """The whole transposed convolution: no padding crop, no output padding."""
    stride, dilation = conv.stride[0], conv.dilation[0]
    return F.conv_transpose1d(x, conv.weight, conv.bias, stride, 0, 0, conv.groups, dilation)


@given(conv_transposes(), st.integers(0, 12), st.sampled_from(["pad", "valid"]))
def test_output_length_is_the_modules(
    case: tuple[nn.ConvTranspose1d, int], length: int, edges: Edges
) -> None:
    conv, _ = case
    stream = pts.ConvTranspose1dStream(conv, edges=edges)
    if edges == "valid":
        conv = nn.ConvTranspose1d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            dilation=conv.dilation, groups=conv.groups,
        )  # fmt: skip
    x = torch.zeros(1, conv.in_channels, length, dtype=conv.weight.dtype)
    try:
        expected = conv(x).shape[-1]
    except RuntimeError:
        expected = 0  # the module refuses the input
    assert stream.output_length(length) == expected


@given(conv_transposes(), st.booleans(), st.integers(0, 2**16))
def test_streams_exactly_float64(
    case: tuple[nn.ConvTranspose1d, int], batched: bool, seed: int
) -> None:
    conv, length = case
    shape = (2, conv.in_channels, length) if batched else (conv.in_channels, length)
    stream = pts.ConvTranspose1dStream(conv)
    assert_streams_exactly(conv, signal(shape, seed), stream=stream, partitions=4, seed=seed)


@given(conv_transposes(), st.integers(0, 2**16))
def test_streams_exactly_float32(case: tuple[nn.ConvTranspose1d, int], seed: int) -> None:
    conv, length = case
    conv = conv.float()
    x = signal((2, conv.in_channels, length), seed, torch.float32)
    assert_streams_exactly(conv, x, partitions=3, seed=seed)


@given(
    st.integers(2, 8),
    st.integers(1, 8),
    st.integers(0, 4),
    st.booleans(),
    st.integers(8, 40),
    st.integers(0, 2**16),
)
def test_streams_large_weights_exactly(
    kernel: int, stride: int, padding: int, bias: bool, length: int, seed: int
) -> None:
    # 128 x 128 taps of 4 or more: a few inputs go through a matrix product and an overlap-add
    stride = max(stride, -(-kernel // 4))
    conv = nn.ConvTranspose1d(128, 128, kernel, stride=stride, padding=padding, bias=bias)
    x = signal((1, 128, length), seed, torch.float32)
    try:
        conv(x)
    except RuntimeError:
        return  # too short for this padding
    assert_streams_exactly(conv, x, stream=pts.ConvTranspose1dStream(conv), partitions=3, seed=seed)


@given(conv_transposes(), st.integers(0, 2**16))
def test_minimal_latency(case: tuple[nn.ConvTranspose1d, int], seed: int) -> None:
    conv, length = case
    x = signal((1, conv.in_channels, length), seed)
    assert_emits_once_determined(conv, x, pts.ConvTranspose1dStream(conv))


@pytest.mark.parametrize(
    "conv",
    [
        nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1),
        nn.ConvTranspose1d(2, 3, 16, stride=8, padding=4),
        nn.ConvTranspose1d(2, 2, 3, stride=3, output_padding=2, groups=2),
        nn.ConvTranspose1d(1, 2, 3, dilation=2, padding=1, bias=False),
    ],
)
def test_minimal_latency_against_the_core_checker(conv: nn.ConvTranspose1d) -> None:
    # no output waits for later inputs to exist here, so the core checker applies as it is
    conv = conv.double()
    assert_minimal_latency(conv, signal((conv.in_channels, 20), 3), stream=pts.create_stream(conv))


@given(conv_transposes(), st.integers(0, 2**16))
def test_valid_edges_give_the_whole_transposed_convolution(
    case: tuple[nn.ConvTranspose1d, int], seed: int
) -> None:
    conv, length = case
    x = signal((2, conv.in_channels, length), seed)
    stream = pts.ConvTranspose1dStream(conv, edges="valid")
    expected = unpadded(conv, x)
    assert_streams_exactly(conv, x, stream=stream, expected=expected, partitions=3, seed=seed)


def test_valid_edges_match_the_unpadded_module() -> None:
    # torch-streamer 0.0.2 ignored padding and output_padding: the module without them
    conv = nn.ConvTranspose1d(3, 2, 5, stride=3, padding=2, output_padding=1).double()
    bare = nn.ConvTranspose1d(3, 2, 5, stride=3).double()
    bare.load_state_dict(conv.state_dict())
    x = signal((3, 17), 4)
    stream = pts.ConvTranspose1dStream(conv, edges="valid")
    assert_streams_exactly(conv, x, stream=stream, expected=bare(x))
    assert bare(x).shape[-1] == (17 - 1) * 3 + 5


def test_first_outputs_of_a_typical_upsampler() -> None:
    # kernel 4, stride 2, padding 1: each input completes two outputs, the first at once
    conv = nn.ConvTranspose1d(1, 1, 4, stride=2, padding=1).double()
    stream = pts.ConvTranspose1dStream(conv)
    x = signal((1, 6), 5)
    sizes = [0 if (y := stream(x[:, i : i + 1])) is None else y.shape[-1] for i in range(6)]
    assert sizes == [1, 2, 2, 2, 2, 2]
    tail = stream(x[:, :0], final=True)
    assert tail is not None
    assert tail.shape[-1] == 1


def test_output_padding_comes_with_final() -> None:
    # the output padding sits where the next input would add: only the end settles it
    conv = nn.ConvTranspose1d(1, 2, 4, stride=2, output_padding=1).double()
    x = signal((1, 4), 6)
    stream = pts.ConvTranspose1dStream(conv)
    head = stream(x)
    assert head is not None
    assert head.shape[-1] == 4 * 2
    tail = stream(x[:, :0], final=True)
    assert tail is not None
    assert tail.shape[-1] == 3
    torch.testing.assert_close(torch.cat([head, tail], -1), conv(x))
    assert conv.bias is not None
    torch.testing.assert_close(tail[:, -1], conv.bias.detach())


def test_gaps_that_exist_either_way_are_not_held() -> None:
    # stride 3 over kernel 1: outputs between two inputs get only the bias, and the output
    # padding makes the one after the last input exist whether or not the signal goes on
    conv = nn.ConvTranspose1d(1, 2, 1, stride=3, output_padding=1).double()
    x = signal((1, 4), 14)
    stream = pts.ConvTranspose1dStream(conv)
    head = stream(x)
    assert head is not None
    assert head.shape[-1] == conv(x).shape[-1] == 11
    assert stream(x[:, :0], final=True) is None


@pytest.mark.parametrize(
    ("conv", "field", "rate", "lookahead"),
    [
        (nn.ConvTranspose1d(1, 1, 4, stride=2), 2, Fraction(2), Fraction(0)),
        (nn.ConvTranspose1d(1, 1, 4, stride=2, padding=1), 2, Fraction(2), Fraction(1, 2)),
        (nn.ConvTranspose1d(1, 1, 16, stride=8, padding=4), 2, Fraction(8), Fraction(1, 2)),
        (nn.ConvTranspose1d(1, 1, 3, padding=1), 3, Fraction(1), Fraction(1)),
        (nn.ConvTranspose1d(1, 1, 1, stride=3), 1, Fraction(3), Fraction(0)),
        (nn.ConvTranspose1d(1, 1, 3, stride=2, dilation=3, padding=2), 4, Fraction(2), Fraction(1)),
    ],
)
def test_timing(conv: nn.ConvTranspose1d, field: int, rate: Fraction, lookahead: Fraction) -> None:
    stream = pts.create_stream(conv)
    assert isinstance(stream, pts.ConvTranspose1dStream)
    assert (stream.receptive_field, stream.rate, stream.lookahead) == (field, rate, lookahead)


def test_timing_maps_match_the_taps() -> None:
    conv = nn.ConvTranspose1d(1, 1, 5, stride=3, padding=2, bias=False).double()
    timing = pts.ConvTranspose1dStream(conv).timing()
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        for output in range(12, 40):
            reached = [
                index
                for index in range(20)
                if conv(torch.eye(20, dtype=torch.float64)[index : index + 1])[0, output] != 0
            ]
            assert (timing.first(output), timing.last(output)) == (min(reached), max(reached))


@pytest.mark.parametrize(
    "conv",
    [
        nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1),
        nn.ConvTranspose1d(2, 4, 3, stride=4, padding=1, output_padding=2, groups=2),
    ],
)
def test_scripted_stream_is_exact(conv: nn.ConvTranspose1d) -> None:
    conv = conv.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(pts.ConvTranspose1dStream(conv))
    x = signal((2, conv.in_channels, 29), 7)
    assert_streams_exactly(conv, x, stream=scripted, partitions=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_stream_is_exact(backend: str) -> None:
    conv = nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1, output_padding=1)
    compiled: Callable[..., Any] = torch.compile(pts.ConvTranspose1dStream(conv), backend=backend)
    x = torch.randn(1, 3, 40)
    with torch.no_grad():
        blocks = [compiled(x[..., i : i + 8], final=i + 8 >= 40) for i in range(0, 40, 8)]
        torch.testing.assert_close(torch.cat(blocks, -1), conv(x))


@pytest.mark.slow
def test_compiled_with_inductor_is_exact() -> None:
    conv = nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1)
    compiled: Callable[..., Any] = torch.compile(pts.ConvTranspose1dStream(conv))
    x = torch.randn(1, 3, 40)
    with torch.no_grad():
        try:
            blocks = [compiled(x[..., i : i + 20], final=i + 20 >= 40) for i in range(0, 40, 20)]
        except torch._dynamo.exc.BackendCompilerFailed as error:
            cause = getattr(error, "inner_exception", None)
            if isinstance(cause, (ImportError, OSError)):
                pytest.skip(f"TorchInductor cannot build kernels here: {cause}")
            raise
        torch.testing.assert_close(torch.cat(blocks, -1), conv(x))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_follows_the_dtype_of_stream_and_module(dtype: torch.dtype) -> None:
    conv = nn.ConvTranspose1d(3, 4, 4, stride=2, padding=1)
    stream = pts.ConvTranspose1dStream(conv)
    stream.double() if dtype == torch.float64 else stream.to(dtype)
    assert conv.weight.dtype == dtype
    x = signal((2, 3, 30), 8, dtype)
    try:
        conv(x)
    except RuntimeError as error:
        pytest.skip(f"ConvTranspose1d in {dtype} is not supported on this CPU: {error}")
    assert_streams_exactly(conv, x, stream=stream, partitions=3)


@pytest.mark.parametrize("style", ["parametrization", "legacy"])
def test_weight_norm_follows_updates(style: str) -> None:
    conv = nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1).double()
    if style == "parametrization":
        conv = nn.utils.parametrizations.weight_norm(conv)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            conv = nn.utils.weight_norm(conv)
    stream = pts.ConvTranspose1dStream(conv)
    x = signal((2, 25), 9)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    with torch.no_grad():
        for name, parameter in conv.named_parameters():
            if "bias" not in name:
                parameter.add_(0.5)
    # the cached weight must not go stale
    assert_streams_exactly(conv, x, stream=stream, partitions=2)


def test_follows_weights_replaced_between_streams() -> None:
    # a new parameter, new storage for the old one, a new dtype: each must reach the stream,
    # which keeps a matrix view of the weight for its one-sample blocks
    conv = nn.ConvTranspose1d(2, 3, 4, stride=2).double()
    stream = pts.create_stream(conv)
    x = signal((2, 20), 12)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.weight.data = torch.randn_like(conv.weight)
    assert_streams_exactly(conv, x, stream=stream, partitions=2)
    conv.float()
    assert_streams_exactly(conv, x.float(), stream=stream, partitions=2)


def test_shares_weights_with_module() -> None:
    conv = nn.ConvTranspose1d(2, 2, 3, stride=2).double()
    stream = pts.ConvTranspose1dStream(conv)
    assert all(any(p is q for q in conv.parameters()) for p in stream.parameters())
    with torch.no_grad():
        conv.weight.mul_(3.0)
    assert_streams_exactly(conv, signal((2, 12), 10), stream=stream, partitions=2)


def test_snapshot_resumes_exactly() -> None:
    conv = nn.ConvTranspose1d(2, 3, 5, stride=2, padding=2).double()
    x = signal((2, 30), 11)
    assert_resumes_from_snapshots(conv, x, 13, stream=pts.ConvTranspose1dStream(conv))


def test_rejected_block_leaves_stream_exact() -> None:
    conv = nn.ConvTranspose1d(2, 3, 4, stride=3, padding=1).double()
    x = signal((2, 20), 12)
    stream = pts.ConvTranspose1dStream(conv)
    first = stream(x[:, :7])
    with pytest.raises(pts.StreamError, match="ConvTranspose1dStream: expected 2 input channels"):
        stream(signal((3, 5), 13))
    with pytest.raises(pts.StreamError, match="float64"):
        stream(x[:, 7:9].float())
    rest = stream(x[:, 7:], final=True)
    torch.testing.assert_close(torch.cat([first, rest], -1), conv(x))


def test_refusals() -> None:
    with pytest.raises(pts.NotStreamableError, match=r"ConvTranspose1dStream.*Conv1d"):
        pts.ConvTranspose1dStream(nn.Conv1d(1, 1, 3))  # type: ignore[arg-type]
    with pytest.raises(pts.StreamError, match="edges"):
        pts.ConvTranspose1dStream(nn.ConvTranspose1d(1, 1, 3), edges="same")  # type: ignore[arg-type]


def test_repr() -> None:
    assert (
        repr(pts.ConvTranspose1dStream(nn.ConvTranspose1d(128, 64, 4, stride=2)))
        == "ConvTranspose1dStream(128, 64, kernel_size=4, stride=2)"
    )
    conv = nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2)
    assert repr(pts.ConvTranspose1dStream(conv, edges="valid")) == (
        "ConvTranspose1dStream(4, 2, kernel_size=3, stride=2, padding=1, output_padding=1, "
        "groups=2, edges='valid')"
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streams_exactly_on_the_test_device(dtype: torch.dtype) -> None:
    device = device_under_test()
    for conv in [
        nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1),
        nn.ConvTranspose1d(4, 6, 5, stride=3, padding=3, output_padding=2, dilation=2, groups=2),
        nn.ConvTranspose1d(8, 8, 16, stride=8, padding=4, bias=False),
    ]:
        conv = conv.to(device, dtype)
        x = signal((2, conv.in_channels, 50), 15, dtype).to(device)
        assert_streams_exactly(conv, x, stream=pts.ConvTranspose1dStream(conv), partitions=3)

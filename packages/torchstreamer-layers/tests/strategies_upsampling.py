"""Strategies and a latency oracle shared by the transposed-convolution and upsampling tests."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from torchstreamer.core import BaseStream
from torchstreamer.testing import tolerance


def signal(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """A reproducible unit-scale random signal."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=torch.float64, generator=generator).to(dtype)


def shortest_input(module: nn.Module, channels: int, longest: int = 64) -> int:
    """The shortest signal ``module`` accepts (a transposed conv refuses an empty output)."""
    for length in range(1, longest):
        try:
            module(torch.zeros(1, channels, length, dtype=torch.float64))
        except RuntimeError:
            continue
        return length
    raise AssertionError(f"{module!r} refuses every length below {longest}")


@st.composite
def conv_transposes(draw: st.DrawFn) -> tuple[nn.ConvTranspose1d, int]:
    """A random float64 ConvTranspose1d, every option in play, and a length it accepts."""
    groups = draw(st.sampled_from([1, 2]))
    kernel = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 7))
    dilation = draw(st.integers(1, 3))
    span = dilation * (kernel - 1) + 1
    conv = nn.ConvTranspose1d(
        groups * draw(st.integers(1, 3)),
        groups * draw(st.integers(1, 3)),
        kernel,
        stride=stride,
        padding=draw(st.integers(0, span + 2)),
        output_padding=draw(st.integers(0, max(stride, dilation) - 1)),
        groups=groups,
        bias=draw(st.booleans()),
        dilation=dilation,
    ).double()
    shortest = shortest_input(conv, conv.in_channels)
    return conv, draw(st.integers(shortest, shortest + 30))


@st.composite
def upsamplings(draw: st.DrawFn) -> nn.Upsample:
    """A random streamable nn.Upsample: integer factor in any spelling, every mode."""
    factor = draw(st.integers(1, 7))
    spelling = draw(st.sampled_from(["int", "float", "tuple", "float tuple"]))
    spellings: dict[str, int | float | tuple[int] | tuple[float]] = {
        "int": factor,
        "float": float(factor),
        "tuple": (factor,),
        "float tuple": (float(factor),),
    }
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear"]))
    align = draw(st.sampled_from([None, False])) if mode == "linear" else None
    return nn.Upsample(
        scale_factor=spellings[spelling],
        mode=mode,
        align_corners=align,
        recompute_scale_factor=draw(st.sampled_from([None, False, True])),
    )


def determined_outputs(module: nn.Module, x: Tensor, prefix: int, *, exact: bool) -> int:
    """How many leading outputs every valid signal that starts with ``x[..., :prefix]`` shares.

    Compares ``module`` on the prefix followed by long random continuations and by the
    shortest continuation the module accepts (often none): an output counts only if it
    exists, with the same value, for all of them. Unlike a check with long continuations
    alone, this sees that the ``padding`` of a transposed convolution crops outputs at the
    end, so they exist only once later inputs arrive.

    Args:
        module: the module, the only oracle.
        x: the signal, ``[B, C, T]``.
        prefix: samples known so far.
        exact: compare bit for bit (for layers whose every output is computed the same way
            whatever the length), rather than within the dtype's tolerance; a weight of the
            size of a rounding error then still counts as a dependency.
    """
    generator = torch.Generator().manual_seed(prefix)
    head = x[..., :prefix]
    extra = max(16, x.shape[-1])
    outputs = []
    with torch.no_grad():
        for index in range(3):
            tail = torch.randn(*x.shape[:-1], extra + 3 * index, generator=generator)
            outputs.append(module(torch.cat([head, tail.to(x)], dim=-1)))
        for size in range(extra):
            tail = torch.randn(*x.shape[:-1], size, generator=generator)
            try:
                outputs.append(module(torch.cat([head, tail.to(x)], dim=-1)))
            except RuntimeError:
                continue
            break
    atol, rtol = (0.0, 0.0) if exact else tolerance(x.dtype)
    reference = outputs[0]
    count: int = reference.shape[-1]
    for other in outputs[1:]:
        common = min(other.shape[-1], count)
        same = torch.isclose(other[..., :common], reference[..., :common], atol=atol, rtol=rtol)
        differ = (~same.flatten(0, -2).all(dim=0)).nonzero()
        count = int(differ[0]) if len(differ) else common
    return count


def assert_emits_once_determined(
    module: nn.Module, x: Tensor, stream: BaseStream, *, exact: bool = False
) -> None:
    """Asserts that, fed one sample at a time, ``stream`` emits exactly what is determined.

    Args:
        module: the module, whose offline outputs decide (see :func:`determined_outputs`).
        x: the signal, ``[B, C, T]``.
        stream: the stream under test.
        exact: passed to :func:`determined_outputs`.
    """
    stream.reset()
    emitted = 0
    with torch.no_grad():
        for prefix in range(x.shape[-1] + 1):
            # an empty first block lets outputs that depend on no input out
            y = stream(x[..., prefix - 1 : prefix] if prefix else x[..., :0])
            emitted += 0 if y is None else y.shape[-1]
            determined = determined_outputs(module, x, prefix, exact=exact)
            assert emitted == determined, (
                f"after {prefix} input samples the stream had emitted {emitted} outputs, "
                f"but the input determines exactly {determined}"
            )
    stream.reset()


def device_under_test() -> torch.device:
    """``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset); skips when CUDA is asked for but absent.

    On CUDA, float32 convolutions and products are made exact IEEE arithmetic (no TF32), so
    that comparisons measure the streams, not TF32 rounding.
    """
    device = torch.device(os.environ.get("TORCHSTREAMER_TEST_DEVICE", "cpu"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("TORCHSTREAMER_TEST_DEVICE asks for CUDA, but no CUDA device is available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device

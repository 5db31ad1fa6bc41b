"""Shared fixtures of the torchstreamer-nets tests: devices, and random networks for properties.

The random networks are built from hypothesis draws, layer by layer, so that every example is a
network a user could write; the reference is always the network's own offline output.
"""

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from hypothesis import strategies as st
from torch import nn

from torchstreamer.testing import device_under_test, load_hypothesis_profile

load_hypothesis_profile()

# the machines that run these tests are shared: one intra-op thread is as fast at the small
# blocks tested here, and does not slow to a crawl when other work competes for the cores
torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    # the random networks include 'same' padding with even kernels on purpose
    config.addinivalue_line(
        "filterwarnings", "ignore:Using padding='same' with even kernel lengths:UserWarning"
    )


Draw = Callable[[st.SearchStrategy[Any]], Any]
LayerMaker = Callable[..., tuple[list[nn.Module], int]]


@pytest.fixture
def device() -> torch.device:
    """The device under test: ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset), with IEEE
    float32 on CUDA."""
    return device_under_test()


@pytest.fixture
def no_script_warning() -> Iterator[None]:
    """Silences the warning that ``torch.jit.script`` emits in recent torch versions.

    A ``FutureWarning`` in some versions, a ``DeprecationWarning`` in others.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
        yield


def _conv(draw: Draw, c_in: int, c_out: int, *, keep_rate: bool) -> nn.Module:
    kernel = draw(st.integers(1, 5))
    dilation = draw(st.integers(1, 2))
    stride = 1 if keep_rate else draw(st.integers(1, 3))
    span = dilation * (kernel - 1) + 1
    padding: Any = draw(
        st.sampled_from(["same", 0, span // 2, span - 1] if stride == 1 else [0, span // 2])
    )
    mode = draw(st.sampled_from(["zeros", "zeros", "replicate", "reflect"]))
    groups = draw(st.sampled_from([1, 2])) if c_in % 2 == 0 and c_out % 2 == 0 else 1
    return nn.Conv1d(
        c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation,
        groups=groups, padding_mode=mode, bias=draw(st.booleans()),
    )  # fmt: skip


def _pool(draw: Draw, *, keep_rate: bool) -> nn.Module:
    kernel = draw(st.integers(1, 4))
    stride = 1 if keep_rate else draw(st.integers(1, kernel))
    padding = draw(st.integers(0, kernel // 2))
    kind = draw(st.sampled_from(["avg", "max"]))
    if kind == "avg":
        return nn.AvgPool1d(
            kernel, stride, padding, ceil_mode=draw(st.booleans()),
            count_include_pad=draw(st.booleans()),
        )  # fmt: skip
    return nn.MaxPool1d(kernel, stride, padding, ceil_mode=draw(st.booleans()))


def _transposed(draw: Draw, c_in: int, c_out: int) -> nn.Module:
    stride = draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 5))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.integers(0, (dilation * (kernel - 1)) // 2))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    return nn.ConvTranspose1d(
        c_in, c_out, kernel, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation, bias=draw(st.booleans()),
    )  # fmt: skip


def _pad(draw: Draw) -> nn.Module:
    left, right = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    kind = draw(st.sampled_from(["constant", "replicate", "reflect"]))
    if kind == "constant":
        return nn.ConstantPad1d((left, right), draw(st.floats(-1, 1)))
    return (
        nn.ReplicationPad1d((left, right))
        if kind == "replicate"
        else nn.ReflectionPad1d((left, right))
    )


def random_layers(
    draw: Draw,
    channels: int,
    *,
    count: int = 4,
    keep_rate: bool = False,
    kinds: tuple[str, ...] = ("conv", "pool", "act", "pad", "transposed", "upsample"),
) -> tuple[list[nn.Module], int]:
    """Draws up to ``count`` layers for a signal of ``channels`` channels.

    Returns:
        the layers and the channels of their output.
    """
    layers: list[nn.Module] = []
    for _ in range(draw(st.integers(1, count))):
        kind = draw(st.sampled_from(kinds))
        if keep_rate and kind in ("transposed", "upsample"):
            kind = "conv"
        out = (
            draw(st.sampled_from([channels, 2, 4])) if kind in ("conv", "transposed") else channels
        )
        if kind == "conv":
            layers.append(_conv(draw, channels, out, keep_rate=keep_rate))
        elif kind == "pool":
            layers.append(_pool(draw, keep_rate=keep_rate))
        elif kind == "act":
            layers.append(draw(st.sampled_from([nn.GELU, nn.ReLU, nn.Tanh, nn.Identity]))())
        elif kind == "pad":
            layers.append(_pad(draw))
        elif kind == "transposed":
            layers.append(_transposed(draw, channels, out))
        else:
            layers.append(nn.Upsample(scale_factor=draw(st.integers(2, 3))))
        channels = out
    return layers, channels


@pytest.fixture(scope="session")
def layers() -> LayerMaker:
    """``layers(draw, channels, *, count=4, keep_rate=False, kinds=...)``: random layers."""
    return random_layers


def offline_or_none(module: nn.Module, x: torch.Tensor) -> "torch.Tensor | None":
    """``module(x)``, or None when the module rejects ``x`` offline or returns nothing."""
    try:
        with torch.no_grad():
            y = module(x)
    except (RuntimeError, ValueError):
        return None
    return y if y.shape[-1] > 0 else None


@pytest.fixture(scope="session")
def offline() -> Callable[[nn.Module, torch.Tensor], "torch.Tensor | None"]:
    """``offline(module, x)``: ``module(x)``, or None when that fails or is empty."""
    return offline_or_none

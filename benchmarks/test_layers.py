"""Every layer stream, per block size, against offline inference and torch-streamer 0.0.2.

Modules are unpadded where 0.0.2 is compared (it ignores padding), so both compute the same
outputs; the padded variants are measured against offline only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import torch
from streaming import BLOCKS, LENGTH, compare_streaming
from torch import nn

import torchstreamer as pts

if TYPE_CHECKING:
    from benchmarks.conftest import Timer

CHANNELS = 128

# name -> (module factory, 0.0.2 stream class name or None)
LAYERS: dict[str, tuple[Callable[[], nn.Module], str | None]] = {
    "conv k3": (lambda: nn.Conv1d(CHANNELS, CHANNELS, 3), "Conv1dStream"),
    "conv k3 d4": (lambda: nn.Conv1d(CHANNELS, CHANNELS, 3, dilation=4), "Conv1dStream"),
    "conv k2 s2": (lambda: nn.Conv1d(CHANNELS, CHANNELS, 2, stride=2), "Conv1dStream"),
    "conv k7 same reflect": (
        lambda: nn.Conv1d(CHANNELS, CHANNELS, 7, padding=3, padding_mode="reflect"),
        None,
    ),
    "conv_transpose k4 s2": (
        lambda: nn.ConvTranspose1d(CHANNELS, CHANNELS, 4, stride=2),
        "ConvTranspose1dStream",
    ),
    "avg_pool k2": (lambda: nn.AvgPool1d(2), "Pool1dStream"),
    "max_pool k3 s2 pad1": (lambda: nn.MaxPool1d(3, stride=2, padding=1), None),
    "reflection_pad 3": (lambda: nn.ReflectionPad1d(3), None),
    "upsample nearest x2": (lambda: nn.Upsample(scale_factor=2), None),
    "upsample linear x4": (lambda: nn.Upsample(scale_factor=4, mode="linear"), None),
    "gelu": (lambda: nn.GELU(), "Elementwise1dStream"),
}


# layers whose module, called on each block alone, gives the streamed output
BARE = {"gelu", "upsample nearest x2"}


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer(
    timer: Timer,
    device: torch.device,
    optional_baseline: ModuleType | None,
    layer: str,
    block: int,
) -> None:
    make, baseline_name = LAYERS[layer]
    torch.manual_seed(0)
    module = make().to(device).eval()
    x = torch.randn(CHANNELS, LENGTH, device=device)
    factory = None
    if optional_baseline is not None and baseline_name is not None:
        stream_class = getattr(optional_baseline, baseline_name)

        def factory() -> nn.Module:
            return stream_class(module)  # type: ignore[no-any-return]

    compare_streaming(
        timer,
        module,
        x,
        block,
        ours=lambda: pts.create_stream(module),
        baseline=factory,
        name=layer,
        # element-wise layers give the right output block by block: their cost per block
        # with no streaming at all is the floor for any stream of them
        bare=layer in BARE,
    )

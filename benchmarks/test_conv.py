"""Conv1dStream against torch-streamer 0.0.2 and against the offline convolution.

The timed call streams a whole signal in blocks (the stream is reset before each round); the
ratios compare it with 0.0.2's ``Conv1dStream`` on the same blocks and with one offline call of
the module on the whole signal. The convolution has no padding, so both libraries compute the
same outputs.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import torch

import torchstreamer as pts

if TYPE_CHECKING:
    from benchmarks.conftest import Timer

CHANNELS = 64
LENGTH = 4096


@pytest.mark.parametrize("block", [1, 64, 1024, 4096])
def test_conv1d_stream(
    timer: Timer, device: torch.device, baseline: ModuleType, block: int
) -> None:
    dtype = torch.float32
    conv = torch.nn.Conv1d(CHANNELS, CHANNELS, 3).to(device, dtype).eval()
    x = torch.randn(CHANNELS, LENGTH, device=device, dtype=dtype)
    blocks = list(torch.split(x, block, dim=-1))
    ours = pts.Conv1dStream(conv)
    theirs = baseline.Conv1dStream(conv)

    def stream(target: torch.nn.Module) -> None:
        with torch.inference_mode():
            for index, piece in enumerate(blocks):
                target(piece, final=index == len(blocks) - 1)

    def offline() -> None:
        with torch.inference_mode():
            conv(x)

    def reset() -> None:
        ours.reset()
        theirs.x_buffer.clear()
        theirs.x_length = 0
        theirs.x_skip = 0

    rounds = 5 if block == 1 else 20
    median = timer.measure(lambda: stream(ours), setup=reset, rounds=rounds)
    medians = timer.compare(
        {"ours": lambda: stream(ours), "0.0.2": lambda: stream(theirs), "offline": offline},
        setup=reset,
        rounds=rounds,
    )
    timer.record(
        block=block,
        channels=CHANNELS,
        length=LENGTH,
        dtype=str(dtype),
        median_s=median,
        ratio_vs_offline=medians["ours"] / medians["offline"],
        ratio_vs_0_0_2=medians["ours"] / medians["0.0.2"],
        baseline_vs_offline=medians["0.0.2"] / medians["offline"],
    )

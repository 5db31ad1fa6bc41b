"""TimeBuffer against ``torch.cat`` of the held state and each new block.

Both hold the last ``HOLD`` samples between blocks, as a kernel-5 convolution does; the timed
call is one block's extend and advance. ``ratio_vs_cat`` below 1 means the buffer is faster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from torchstreamer.core import TimeBuffer

if TYPE_CHECKING:
    from benchmarks.conftest import Timer

CHANNELS = 64
HOLD = 4
ROUNDS = 2000


@pytest.mark.parametrize("block", [1, 64, 1024, 4096])
def test_time_buffer_extend_advance(timer: Timer, device: torch.device, block: int) -> None:
    dtype = torch.float32
    x = torch.randn(1, CHANNELS, block, device=device, dtype=dtype)
    start = torch.zeros(1, CHANNELS, HOLD, device=device, dtype=dtype)

    buffer = TimeBuffer()
    buffer.advance(buffer.extend(start), 0)

    def with_buffer() -> None:
        view = buffer.extend(x)
        buffer.advance(view, view.size(-1) - HOLD)

    state = [start]

    def with_cat() -> None:
        joined = torch.cat([state[0], x], dim=-1)
        state[0] = joined[..., joined.size(-1) - HOLD :]

    median = timer.measure(with_buffer, rounds=ROUNDS)
    medians = timer.compare({"buffer": with_buffer, "cat": with_cat}, rounds=ROUNDS)
    assert buffer.held == HOLD
    assert state[0].size(-1) == HOLD
    timer.record(
        block=block,
        channels=CHANNELS,
        dtype=str(dtype),
        median_s=median,
        cat_median_s=medians["cat"],
        ratio_vs_cat=medians["buffer"] / medians["cat"],
    )

"""The measurement shared by the layer and network benchmarks.

A round streams a whole signal in blocks through a fresh stream state; it is compared, in
interleaved rounds, with one offline call of the module on the whole signal and, where
torch-streamer 0.0.2 can express the module, with 0.0.2's stream on the same blocks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from benchmarks.conftest import Timer

BLOCKS = (1, 64, 1024, 4096)
LENGTH = 4096


def stream_signal(stream: nn.Module, blocks: list[torch.Tensor]) -> None:
    """Streams every block, ``final=True`` on the last."""
    last = len(blocks) - 1
    with torch.inference_mode():
        for index, block in enumerate(blocks):
            stream(block, final=index == last)


def rounds_for(block: int) -> int:
    """Timed rounds: fewer for one-sample blocks (thousands of calls a round), more otherwise."""
    return 5 if block == 1 else 10


def compare_streaming(
    timer: Timer,
    module: nn.Module,
    x: torch.Tensor,
    block: int,
    *,
    ours: Callable[[], nn.Module],
    baseline: Callable[[], nn.Module] | None = None,
    name: str,
    bare: bool = False,
    scripted: bool = False,
) -> dict[str, float]:
    """Times streaming ``x`` in blocks against offline and against the baseline.

    Args:
        timer: the benchmark's timer.
        module: the module, for the offline call.
        x: the whole signal, ``[C, T]`` (the layout torch-streamer 0.0.2 takes).
        block: block size.
        ours: builds the torchstreamer stream (once; it resets itself on ``final``).
        baseline: builds the 0.0.2 stream, anew before every round (0.0.2 does not reset
            on ``final``), or None where 0.0.2 cannot express the module.
        name: what is measured, recorded with the result.
        bare: also time the module called on each block by itself, with no state: what an
            element-wise layer costs per block with no streaming at all, the least any
            stream of it can cost. Only where that gives the right output.
        scripted: also time both streams under ``torch.jit.script``.

    Returns:
        the median seconds per round of each contender.
    """
    # each block in memory of its own, as blocks come from an audio interface or a socket
    # (slices of one long signal would have the signal's row stride, which slows some kernels)
    blocks = [piece.contiguous() for piece in torch.split(x, block, dim=-1)]
    stream = ours()
    contenders: dict[str, Callable[[], object]] = {
        "ours": lambda: stream_signal(stream, blocks),
        "offline": lambda: _offline(module, x),
    }
    setup: Callable[[], None] | None = None
    if baseline is not None:
        theirs = [baseline()]

        def fresh() -> None:
            theirs[0] = baseline()

        contenders["0.0.2"] = lambda: stream_signal(theirs[0], blocks)
        setup = fresh
    if scripted:
        ours_scripted = torch.jit.script(ours())
        contenders["ours scripted"] = lambda: stream_signal(ours_scripted, blocks)
        if baseline is not None:
            theirs_scripted = torch.jit.script(baseline())
            # 0.0.2 keeps state across final=True: a fresh copy of the scripted stream
            # before every round, made outside the timed call as for the eager one
            fresh_scripted = [copy.deepcopy(theirs_scripted)]
            previous = setup

            def fresh_both() -> None:
                if previous is not None:
                    previous()
                fresh_scripted[0] = copy.deepcopy(theirs_scripted)

            contenders["0.0.2 scripted"] = lambda: stream_signal(fresh_scripted[0], blocks)
            setup = fresh_both
    if bare:
        contenders["module alone"] = lambda: _per_block(module, blocks)
    rounds = rounds_for(block)
    median = timer.measure(contenders["ours"], rounds=rounds)
    medians = timer.compare(contenders, setup=setup, rounds=rounds)
    info: dict[str, object] = {
        "name": name,
        "block": block,
        "length": x.shape[-1],
        "dtype": str(x.dtype),
        "blocks": "contiguous",
        "median_s": median,
        "us_per_block": 1e6 * medians["ours"] / len(blocks),
        "ratio_vs_offline": medians["ours"] / medians["offline"],
    }
    if "0.0.2" in medians:
        info["speedup_vs_0_0_2"] = medians["0.0.2"] / medians["ours"]
        info["baseline_us_per_block"] = 1e6 * medians["0.0.2"] / len(blocks)
    for contender in ("ours scripted", "0.0.2 scripted", "module alone"):
        if contender in medians:
            key = contender.replace(" ", "_").replace(".", "_")
            info[f"{key}_us_per_block"] = 1e6 * medians[contender] / len(blocks)
    timer.record(**info)
    return medians


def _per_block(module: nn.Module, blocks: list[torch.Tensor]) -> None:
    with torch.inference_mode():
        for block in blocks:
            module(block.unsqueeze(0))


def _offline(module: nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        # with a batch axis: some modules (nn.Upsample) take no [C, T] input
        module(x.unsqueeze(0))

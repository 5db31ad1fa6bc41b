"""describe(): the per-stream table of timing figures; buffered_samples()."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, Timing, describe
from torchstreamer.core.describe import buffered_samples


class Strided(BaseStream):
    def step(self, x: Tensor, final: bool = False) -> Tensor | None:
        return None

    def timing(self) -> Timing:
        return Timing.window(5, 2, -2)


class Untimed(BaseStream):
    def forward(self, x: Tensor, final: bool = False) -> Tensor | None:
        return x


class Chain(BaseStream):
    def __init__(self, *stages: BaseStream) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def step(self, x: Tensor, final: bool = False) -> Tensor | None:
        y: Tensor | None = x
        for stage in self.stages:
            if y is None:
                break
            y = cast(BaseStream, stage).step(y, final)
        return y

    def reset_state(self) -> None:
        for stage in self.stages:
            cast(BaseStream, stage).reset_state()

    def timing(self) -> Timing:
        return Timing.chain([cast(BaseStream, stage).timing() for stage in self.stages])


def test_a_single_stream(fir_stream: Any) -> None:
    assert describe(fir_stream(nn.Conv1d(1, 1, 4))) == (
        "path  stream     receptive_field  rate  lookahead\n"
        ".     FirStream  4                1     3"
    )


def test_a_composite_lists_its_streams_depth_first(fir_stream: Any) -> None:
    # the chain: inputs 2j - 2 .. 2j + 5 for output j (receptive field 1 + 3 + 4 * 1)
    inner = Chain(Strided())
    inner.stream_name = "Inner"
    table = describe(Chain(fir_stream(nn.Conv1d(1, 1, 4)), inner, Untimed()))
    assert table == (
        "path               stream     receptive_field  rate  lookahead\n"
        ".                  Chain      ?                ?     ?\n"
        "stages.0           FirStream  4                1     3\n"
        "stages.1           Inner      5                1/2   2\n"
        "stages.1.stages.0  Strided    5                1/2   2\n"
        "stages.2           Untimed    ?                ?     ?"
    )


def test_figures_of_a_timed_chain(fir_stream: Any) -> None:
    table = describe(Chain(fir_stream(nn.Conv1d(1, 1, 4)), Strided()))
    first_row = table.splitlines()[1].split()
    assert first_row == [".", "Chain", "8", "1/2", "5"]
    assert len(table.splitlines()) == 4


def test_modules_that_are_not_streams_are_left_out(fir_stream: Any) -> None:
    # FirStream holds an nn.Conv1d and a TimeBuffer: neither is a row
    table = describe(Chain(fir_stream(nn.Conv1d(1, 1, 2))))
    assert [row.split()[0] for row in table.splitlines()] == ["path", ".", "stages.0"]


def test_buffered_samples_add_up_over_the_network(fir_stream: Any) -> None:
    chain = Chain(fir_stream(nn.Conv1d(1, 1, 4)), fir_stream(nn.Conv1d(1, 1, 3)))
    assert buffered_samples(chain) == 0
    with torch.no_grad():
        chain(torch.randn(1, 10))
    # the first holds its last 3 inputs, the second the last 2 of the 7 it was given
    assert buffered_samples(chain) == 5
    assert describe(chain, buffered=True) == (
        "path      stream     receptive_field  rate  lookahead  buffered\n"
        ".         Chain      6                1     5          5\n"
        "stages.0  FirStream  4                1     3          3\n"
        "stages.1  FirStream  3                1     2          2"
    )
    chain.reset()
    assert buffered_samples(chain) == 0

"""The measurements behind ``torchstreamer check``: exactness over block partitions, and cost."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from torchstreamer.testing import assert_streams_exactly, tolerance

from ._cli_report import Progress
from .stream import BaseStream
from .timing import Timing

__all__ = ["Cost", "check_exactness", "measure_cost"]


class _Counted(BaseStream):
    """Passes blocks on to a stream and counts the samples, to drive a progress bar."""

    def __init__(self, inner: BaseStream, progress: Progress) -> None:
        super().__init__()
        self.inner = inner
        self.progress = progress
        self.stream_name = inner.stream_name
        self.module_hint = inner.module_hint

    def step(self, x: Tensor, final: bool = False) -> Tensor | None:
        self.progress.advance(x.size(-1))
        # through forward, not step: the inner stream checks the block and tracks the batch
        result: Tensor | None = self.inner(x, final)
        return result

    def reset_state(self) -> None:
        self.inner.reset()

    def timing(self) -> Timing:
        return self.inner.timing()


def check_exactness(
    reference: nn.Module,
    stream: BaseStream,
    x: Tensor,
    expected: Tensor,
    *,
    partitions: int,
    block: int,
    seed: int,
) -> str | None:
    """Streams ``x`` through many block partitions and compares with ``expected``.

    Args:
        reference: the offline module that computed ``expected``.
        stream: the stream under test.
        x: the signal, ``[B, C, T]``.
        expected: the offline output.
        partitions: random partitions besides the fixed ones.
        block: the block size the random partitions favour.
        seed: seed of the partitions.

    Returns:
        ``None`` when every partition matches, else the checker's account of the first
        difference.

    Raises:
        StreamError: if the stream rejects the input (e.g. its channel count).
    """
    length = x.shape[-1]
    # the checker streams the whole signal once per plan (three fixed ones and the random
    # ones) and one and a half times more around a reset(); an estimate does for a bar
    total = (4 + partitions) * length + length // 2
    with Progress("checking exactness", total) as progress:
        try:
            assert_streams_exactly(
                reference,
                x,
                stream=_Counted(stream, progress),
                expected=expected,
                partitions=partitions,
                block=block,
                seed=seed,
            )
        except AssertionError as error:
            return str(error)
    return None


@dataclass(frozen=True)
class Cost:
    """What streaming a signal in equal blocks costs against one offline call.

    Attributes:
        block: samples per block.
        blocks: blocks in the signal.
        streaming: seconds to stream the whole signal.
        offline: seconds of one offline call on the whole signal.
        mismatch: how the output of the blocks differs from the offline output, or ``None``.
    """

    block: int
    blocks: int
    streaming: float
    offline: float
    mismatch: str | None

    @property
    def per_block(self) -> float:
        """Seconds per block."""
        return self.streaming / self.blocks


def measure_cost(
    module: nn.Module, stream: BaseStream, x: Tensor, expected: Tensor, *, block: int
) -> Cost:
    """Times streaming ``x`` in blocks of ``block`` samples and one offline call.

    Each is run once to warm up and once timed. The warm-up pass of the stream also checks its
    output against ``expected``, so these exact blocks are one more partition checked.
    """
    blocks = [x[..., start : start + block] for start in range(0, x.shape[-1], block)]
    last = len(blocks) - 1
    with Progress(f"timing blocks of {block}", 2 * len(blocks) + 2) as progress:
        outputs = []
        for index, piece in enumerate(blocks):
            y = stream(piece, final=index == last)
            if y is not None:
                outputs.append(y)
            progress.advance()
        mismatch = _difference(outputs, expected, f"blocks of {block}")
        _synchronize(x)
        start = time.perf_counter()
        for index, piece in enumerate(blocks):
            stream(piece, final=index == last)
        _synchronize(x)
        streaming = time.perf_counter() - start
        progress.advance(len(blocks))
        module(x)
        progress.advance()
        _synchronize(x)
        start = time.perf_counter()
        module(x)
        _synchronize(x)
        offline = time.perf_counter() - start
    return Cost(block, len(blocks), streaming, offline, mismatch)


def _synchronize(x: Tensor) -> None:
    # kernels run asynchronously on a GPU: a clock read without waiting times only the launch
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def _difference(outputs: list[Tensor], expected: Tensor, where: str) -> str | None:
    if not outputs:
        return f"the stream returned nothing; module(x) has {expected.shape[-1]} samples ({where})"
    got = torch.cat(outputs, dim=-1)
    if got.shape != expected.shape:
        return (
            f"stream output has shape {list(got.shape)}, module(x) has "
            f"{list(expected.shape)} ({where})"
        )
    atol, rtol = tolerance(expected.dtype)
    bad = ~torch.isclose(got.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=True)
    if not bool(bad.any()):
        return None
    sample = int(bad.nonzero()[:, -1].min())
    return (
        f"stream output differs from module(x) first at sample {sample} (of "
        f"{expected.shape[-1]}); {int(bad.sum())} samples differ beyond atol={atol:g}, "
        f"rtol={rtol:g} ({where})"
    )

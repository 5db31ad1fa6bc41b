"""The public checker catches broken streams, and passes correct hand-written ones."""

import random
import re
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import BaseStream, TimeBuffer, Timing, state_tensor
from torchstreamer.testing import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
    determined_outputs,
    random_partition,
    stream_blocks,
    tolerance,
)


class MovingAverage(BaseStream):
    """The stream of ``nn.AvgPool1d(3, stride=1, padding=padding)``, written by hand."""

    def __init__(self, padding: int = 0) -> None:
        super().__init__()
        self.padding = padding
        self.buffer = TimeBuffer()
        self.started = False

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if not self.started:
            x = F.pad(x, (self.padding, 0))
            self.started = True
        if final:
            x = F.pad(x, (0, self.padding))
        view = self.buffer.extend(x)
        ready = view.size(-1) - 2
        y: Optional[Tensor] = None
        if ready > 0:
            y = (view[..., :ready] + view[..., 1 : ready + 1] + view[..., 2 : ready + 2]) / 3
            self.buffer.advance(view, ready)
        else:
            self.buffer.advance(view, 0)
        if final:
            self.reset_state()
        return y

    def reset_state(self) -> None:
        self.buffer.clear()
        self.started = False

    def timing(self) -> Timing:
        return Timing.window(3, 1, -self.padding)


def average(padding: int = 0) -> nn.AvgPool1d:
    return nn.AvgPool1d(3, stride=1, padding=padding)


class TestCorrectStreams:
    @pytest.mark.parametrize(
        ("padding", "shape", "dtype"),
        [
            (0, (2, 23), torch.float32),
            (1, (3, 2, 23), torch.float32),
            (1, (2, 23), torch.float64),
            (0, (3, 2, 23), torch.float64),
        ],
    )
    def test_a_correct_stream_passes(
        self, padding: int, shape: tuple[int, ...], dtype: torch.dtype
    ) -> None:
        x = torch.randn(*shape, dtype=dtype)
        assert_streams_exactly(average(padding), x, stream=MovingAverage(padding))
        assert_minimal_latency(average(padding), x, stream=MovingAverage(padding))

    def test_a_convolution_with_fixed_weights_is_the_same_reference(self) -> None:
        conv = nn.Conv1d(1, 1, 3, bias=False)
        nn.init.constant_(conv.weight, 1 / 3)
        x = torch.randn(1, 1, 30)
        assert_streams_exactly(conv, x, stream=MovingAverage(), seed=3, block=4)
        assert_minimal_latency(conv, x, stream=MovingAverage())

    def test_nan_outputs_are_compared_as_equal(self) -> None:
        x = torch.randn(2, 23)
        x[1, 11] = float("nan")
        assert_streams_exactly(average(), x, stream=MovingAverage())

    def test_expected_replaces_the_module_output(self) -> None:
        x = torch.randn(1, 20)
        shifted = average()(x) + 1
        with pytest.raises(AssertionError, match="first at sample 0"):
            assert_streams_exactly(average(), x, stream=MovingAverage(), expected=shifted)


# ---------------------------------------------------------------------------------------------
# Broken streams: each must be caught with a message that names what is wrong.


class DropsLast(MovingAverage):
    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = super().step(x, final)
        if final and y is not None:
            y = y[..., :-1] if y.size(-1) > 1 else None
        return y


class EmitsExtra(MovingAverage):
    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = super().step(x, final)
        if final and y is not None:
            y = torch.cat([y, y[..., -1:]], dim=-1)
        return y


class WrongInTheMiddle(MovingAverage):
    """Adds 1 to output 7 of every stream."""

    def __init__(self) -> None:
        super().__init__()
        self.emitted = 0

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        emitted = self.emitted
        y = super().step(x, final)
        if y is not None:
            if emitted <= 7 < emitted + y.size(-1):
                y[..., 7 - emitted] += 1
            emitted += y.size(-1)
        self.emitted = 0 if final else emitted
        return y


class ZeroLength(MovingAverage):
    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = super().step(x, final)
        return x[..., :0] if y is None else y


class AliasesItsState(MovingAverage):
    """Returns views of one scratch tensor, which the next call overwrites."""

    def __init__(self) -> None:
        super().__init__()
        self.scratch = torch.zeros(0)

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = super().step(x, final)
        if y is None:
            return None
        if self.scratch.shape[:-1] != y.shape[:-1] or self.scratch.size(-1) < y.size(-1):
            self.scratch = state_tensor([*y.shape[:-1], 64], y)
        self.scratch.normal_()  # overwrites what earlier calls returned
        self.scratch[..., : y.size(-1)] = y
        return self.scratch[..., : y.size(-1)]


class ModifiesItsInput(MovingAverage):
    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        y = super().step(x, final)
        x.mul_(-1)
        return y


class KeepsInferenceState(MovingAverage):
    """Keeps a running sum in a tensor made by whatever mode the first block came under."""

    def __init__(self) -> None:
        super().__init__()
        self.total: Optional[Tensor] = None

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if self.total is None:
            self.total = torch.zeros(x.shape[:-1], dtype=x.dtype)
        self.total += x.sum(-1)
        return super().step(x, final)


class DoesNotReset(MovingAverage):
    def reset_state(self) -> None:
        pass


class EmitsLate(MovingAverage):
    """Exact, but holds every last output back until the next call."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: Optional[Tensor] = None

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        pending = self.pending  # read first: a final step resets the state
        y = super().step(x, final)
        parts = [part for part in (pending, y) if part is not None]
        self.pending = None
        if not parts:
            return None
        y = torch.cat(parts, dim=-1)
        if final:
            return y
        self.pending = y[..., -1:]
        return y[..., :-1] if y.size(-1) > 1 else None

    def reset_state(self) -> None:
        super().reset_state()
        self.pending = None


class EmitsEarly(MovingAverage):
    """Emits one window before its last sample has arrived (guessing zero for it)."""

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        view = self.buffer.extend(x)
        ready = view.size(-1) - 1
        if ready <= 0:
            self.buffer.advance(view, 0)
            return None
        padded = F.pad(view, (0, 1))
        y = (padded[..., :ready] + padded[..., 1 : ready + 1] + padded[..., 2 : ready + 2]) / 3
        self.buffer.advance(view, ready)
        if final:
            self.reset_state()
        return y


BROKEN = [
    (DropsLast, r"the stream produced 20 samples, module\(x\) has 21 \(the first 20 agree"),
    (EmitsExtra, r"the stream produced 22 samples, module\(x\) has 21 \(the first 21 agree"),
    (WrongInTheMiddle, r"differs from module\(x\) first at sample 7 \(of 21; channel 0\)"),
    (ZeroLength, r"call \d+ returned a zero-length tensor"),
    (AliasesItsState, r"the output of call \d+ changed after it was returned"),
    (ModifiesItsInput, r"the stream modified its input tensor in place"),
    (DoesNotReset, r"run 2 of the same stream, the earlier ones passed"),
    (
        KeepsInferenceState,
        r"the first under inference mode, the second under no_grad: the stream raised "
        r"Inplace update to inference tensor",
    ),
]


@pytest.mark.parametrize(("broken", "message"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_stream_is_caught(broken: type[MovingAverage], message: str) -> None:
    x = torch.randn(1, 23)
    with pytest.raises(AssertionError, match=message):
        assert_streams_exactly(average(), x, stream=broken())


def test_the_first_differing_sample_is_named_with_its_values() -> None:
    x = torch.randn(2, 1, 23)
    with pytest.raises(AssertionError) as caught:
        assert_streams_exactly(average(), x, stream=WrongInTheMiddle())
    expected = average()(x)[0, 0, 7].item()
    found = re.search(r"batch 0, channel 0\): got (\S+), expected (\S+);", str(caught.value))
    assert found is not None, str(caught.value)
    assert float(found[1]) == pytest.approx(expected + 1, abs=1e-6)
    assert float(found[2]) == pytest.approx(expected, abs=1e-6)


def test_a_late_stream_passes_exactness_but_not_latency() -> None:
    x = torch.randn(1, 16)
    assert_streams_exactly(average(), x, stream=EmitsLate())
    with pytest.raises(
        AssertionError,
        match=r"after 3 input samples the stream had emitted 0 outputs, but the "
        r"input determines exactly 1",
    ):
        assert_minimal_latency(average(), x, stream=EmitsLate())


def test_an_early_stream_fails_latency() -> None:
    x = torch.randn(1, 16)
    with pytest.raises(
        AssertionError,
        match=r"after 2 input samples the stream had emitted 1 outputs, but the "
        r"input determines exactly 0",
    ):
        assert_minimal_latency(average(), x, stream=EmitsEarly())
    with pytest.raises(AssertionError):
        assert_streams_exactly(average(), x, stream=EmitsEarly())


# ---------------------------------------------------------------------------------------------
# The helpers


@pytest.mark.parametrize("padding", [0, 1])
def test_determined_outputs_of_a_window(padding: int) -> None:
    x = torch.randn(1, 12)
    for prefix in range(13):
        # output j reads inputs j - padding .. j + 2 - padding
        assert determined_outputs(average(padding), x, prefix) == max(0, prefix - 2 + padding)


@pytest.mark.parametrize("block", [None, 5])
@pytest.mark.parametrize("length", [0, 1, 17, 200])
def test_random_partition_adds_up(length: int, block: Optional[int]) -> None:
    rng = random.Random(length)
    for _ in range(20):
        sizes = random_partition(length, rng, block=block)
        assert sum(sizes) == length
        assert all(size >= 0 for size in sizes)


def test_stream_blocks_marks_only_the_last_call_final() -> None:
    calls: list[tuple[int, bool]] = []

    class Recorder(BaseStream):
        def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
            calls.append((x.size(-1), final))
            return None

    x = torch.randn(1, 6)
    stream_blocks(Recorder(), x, [2, 0, 4])
    stream_blocks(Recorder(), x, [2, 4], final_empty=True)
    stream_blocks(Recorder(), x[..., :0], [])
    assert calls == [
        (2, False),
        (0, False),
        (4, True),
        (2, False),
        (4, False),
        (0, True),
        (0, True),
    ]


def test_tolerance_by_dtype() -> None:
    assert tolerance(torch.float64) < tolerance(torch.float32) < tolerance(torch.float16)
    assert tolerance(torch.float32) == (1e-5, 1e-5)


class SharedHistory:
    """Held samples in an object that a deepcopy shares instead of copying."""

    def __init__(self) -> None:
        self.samples: Optional[Tensor] = None

    def __deepcopy__(self, memo: dict[int, object]) -> "SharedHistory":
        return self


class SharesStateWithItsFork(BaseStream):
    """The unpadded moving average, correct but for the state its forks share."""

    def __init__(self) -> None:
        super().__init__()
        self.history = SharedHistory()

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        held = self.history.samples
        view = x if held is None else torch.cat([held, x], dim=-1)
        ready = view.size(-1) - 2
        y = None
        if ready > 0:
            y = (view[..., :ready] + view[..., 1 : ready + 1] + view[..., 2 : ready + 2]) / 3
        self.history.samples = view[..., max(ready, 0) :].clone()
        if final:
            self.reset_state()
        return y

    def reset_state(self) -> None:
        self.history.samples = None


@pytest.mark.parametrize("cut", [0, 1, 2, 9, 23])
def test_snapshots_of_a_correct_stream_resume_exactly(cut: int) -> None:
    x = torch.randn(2, 23, dtype=torch.float64)
    assert_resumes_from_snapshots(average(1), x, cut, stream=MovingAverage(1))


def test_a_fork_sharing_state_is_caught() -> None:
    x = torch.randn(2, 23, dtype=torch.float64)
    with pytest.raises(AssertionError, match="its deepcopy, resumed after the first 9 samples"):
        assert_resumes_from_snapshots(average(), x, 9, stream=SharesStateWithItsFork())

"""The BaseStream protocol: layouts, validation, legacy streams, timing properties, scripting."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, StreamError, Timing, state_tensor
from torchstreamer.testing import assert_streams_exactly, stream_blocks


def joined(outputs: list[Tensor | None]) -> Tensor:
    return torch.cat([y for y in outputs if y is not None], dim=-1)


@pytest.fixture
def conv() -> nn.Conv1d:
    torch.manual_seed(0)
    return nn.Conv1d(2, 3, 4)


class TestLayouts:
    @pytest.mark.parametrize("shape", [(2, 17), (1, 2, 17), (3, 2, 17)])
    def test_output_has_the_layout_of_the_input(
        self, fir_stream: Any, conv: nn.Conv1d, shape: tuple[int, ...]
    ) -> None:
        x = torch.randn(*shape)
        stream = fir_stream(conv)
        with torch.no_grad():
            outputs = stream_blocks(stream, x, [5, 0, 1, 11])
            expected = conv(x)
        assert all(y is None or y.dim() == x.dim() for y in outputs)
        torch.testing.assert_close(joined(outputs), expected)

    def test_the_checker_agrees(
        self, fir_stream: Any, conv: nn.Conv1d, device: torch.device
    ) -> None:
        conv.to(device)
        x = torch.randn(3, 2, 30, device=device)
        assert_streams_exactly(conv, x, stream=fir_stream(conv))

    def test_an_empty_block_gives_none(self, fir_stream: Any, conv: nn.Conv1d) -> None:
        stream = fir_stream(conv)
        assert stream(torch.randn(2, 0)) is None
        assert stream(torch.randn(2, 3)) is None  # less than the kernel
        assert stream(torch.randn(2, 0), final=True) is None


# Bad blocks made from a good [B, C, T] block, and what the message must say about each.
BAD_BLOCKS: list[tuple[str, Callable[[Tensor], Tensor], str]] = [
    ("rank 1", lambda x: x[0, 0], r"expected a \[C, T\] or \[B, C, T\] block, got .*\[5\]"),
    (
        "rank 4",
        lambda x: x.unsqueeze(0),
        r"expected a \[C, T\] or \[B, C, T\] block, got .*\[1, 2, 2, 5\]",
    ),
    ("integer", lambda x: (100 * x).long(), r"expected a floating-point block, got torch.int64"),
    (
        "channels",
        lambda x: torch.cat([x, x[:, :1]], dim=1),
        r"expected 2 input channels \(Conv1d\(2, 3, kernel_size=\(4,\), stride=\(1,\)\)\), "
        r"got 3",
    ),
    ("batch", lambda x: torch.cat([x, x], dim=0), r"batch size is fixed at 2 .*got .*4"),
    ("dtype", lambda x: x.double(), r"expected a torch.float32 block.*got torch.float64"),
]
CASES = {case[0]: case for case in BAD_BLOCKS}


@pytest.mark.parametrize(("case", "spoil", "message"), BAD_BLOCKS, ids=[*CASES])
def test_a_rejected_block_names_the_problem_and_changes_nothing(
    fir_stream: Any, conv: nn.Conv1d, case: str, spoil: Callable[[Tensor], Tensor], message: str
) -> None:
    x = torch.randn(2, 2, 20)
    stream = fir_stream(conv)
    with torch.no_grad():
        head = stream(x[..., :6])
        with pytest.raises(StreamError, match=message) as caught:
            stream(spoil(x[..., 6:11]))
        assert str(caught.value).startswith("FirStream: ")
        tail = stream_blocks(stream, x[..., 6:], [5, 9])
        expected = conv(x)
    torch.testing.assert_close(joined([head, *tail]), expected)


def test_a_block_on_another_device_is_rejected(fir_stream: Any, conv: nn.Conv1d) -> None:
    stream = fir_stream(conv)
    with pytest.raises(StreamError, match=r"expected a block on cpu.*got one on meta"):
        stream(torch.randn(2, 5, device="meta"))


def test_a_block_on_the_cpu_is_rejected_by_a_stream_on_the_device(
    fir_stream: Any, conv: nn.Conv1d, device: torch.device
) -> None:
    if device.type == "cpu":
        pytest.skip("needs a device under test besides the CPU")
    stream = fir_stream(conv.to(device))
    with pytest.raises(StreamError, match=f"expected a block on {device}.*got one on cpu"):
        stream(torch.randn(2, 5))


def test_messages_use_the_stream_name(fir_stream: Any, conv: nn.Conv1d) -> None:
    stream = fir_stream(conv)
    stream.stream_name = "net.3 (Conv1d)"
    with pytest.raises(StreamError, match=re.escape("net.3 (Conv1d): expected 2 input")):
        stream(torch.randn(3, 5))


def test_without_a_module_hint_the_message_has_none(conv: nn.Conv1d, fir_stream: Any) -> None:
    stream = fir_stream(conv)
    stream.module_hint = ""
    with pytest.raises(StreamError, match=r"^FirStream: expected 2 input channels, got 3$"):
        stream(torch.randn(3, 5))


def test_in_channels_minus_one_takes_any_count() -> None:
    class Negate(BaseStream):
        def step(self, x: Tensor, final: bool = False) -> Tensor | None:
            return -x if x.size(-1) else None

    stream = Negate()
    for channels in (1, 5):
        x = torch.randn(channels, 3)
        torch.testing.assert_close(stream(x, final=True), -x)


class TestBatchSize:
    def test_fixed_until_final(self, fir_stream: Any, conv: nn.Conv1d) -> None:
        stream = fir_stream(conv)
        stream(torch.randn(2, 5))  # [C, T]: a batch of one
        with pytest.raises(StreamError, match="fixed at 1"):
            stream(torch.randn(2, 2, 5))
        stream(torch.randn(1, 2, 5), final=True)
        x = torch.randn(3, 2, 9)
        with torch.no_grad():
            torch.testing.assert_close(stream(x, final=True), conv(x))

    def test_fixed_until_reset(self, fir_stream: Any, conv: nn.Conv1d) -> None:
        stream = fir_stream(conv)
        stream(torch.randn(2, 2, 5))
        stream.reset()
        x = torch.randn(4, 2, 9)
        with torch.no_grad():
            torch.testing.assert_close(stream(x, final=True), conv(x))


def test_reset_forgets_what_was_held(fir_stream: Any, conv: nn.Conv1d) -> None:
    stream = fir_stream(conv)
    x = torch.randn(2, 12)
    with torch.no_grad():
        stream(torch.randn(2, 3))  # held, then dropped by reset
        stream.reset()
        torch.testing.assert_close(joined(stream_blocks(stream, x, [2, 10])), conv(x))


def test_final_starts_a_new_stream(fir_stream: Any, conv: nn.Conv1d) -> None:
    stream = fir_stream(conv)
    x, z = torch.randn(2, 10), torch.randn(2, 7)
    with torch.no_grad():
        first = joined(stream_blocks(stream, x, [3, 7]))
        second = joined(stream_blocks(stream, z, [1, 6]))
        torch.testing.assert_close(first, conv(x))
        torch.testing.assert_close(second, conv(z))


# ---------------------------------------------------------------------------------------------
# Streams written for torch-streamer 0.0.2, which override forward() and see [C, T].


class LegacyDifference(BaseStream):
    """y[t] = x[t + 1] - x[t], written the 0.0.2 way: forward() on [C, T], a tensor of state."""

    def __init__(self) -> None:
        super().__init__()
        self.last: Tensor | None = None
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor, final: bool = False) -> Tensor | None:
        self.shapes.append(tuple(x.shape))
        if self.last is not None:
            x = torch.cat([self.last, x], dim=-1)
        y = x[..., 1:] - x[..., :-1] if x.shape[-1] > 1 else None
        self.last = None if final or x.shape[-1] == 0 else x[..., -1:]
        return y


def difference(x: Tensor) -> Tensor:
    return x[..., 1:] - x[..., :-1]


def test_a_legacy_stream_is_called_directly_with_c_t() -> None:
    stream = LegacyDifference()
    x = torch.randn(3, 11)
    result = joined(stream_blocks(stream, x, [4, 0, 1, 6]))
    torch.testing.assert_close(result, difference(x))
    assert {len(shape) for shape in stream.shapes} == {2}


def test_step_adapts_a_legacy_stream_for_composites() -> None:
    stream = LegacyDifference()
    x = torch.randn(1, 3, 11)
    outputs = [stream.step(x[..., :4]), stream.step(x[..., 4:9]), stream.step(x[..., 9:], True)]
    assert stream.shapes == [(3, 4), (3, 5), (3, 2)], "a batch of one is given as [C, T]"
    assert all(y is not None and y.dim() == 3 for y in outputs)
    torch.testing.assert_close(joined(outputs), difference(x))


def test_step_passes_a_batch_to_a_legacy_stream() -> None:
    stream = LegacyDifference()
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(stream.step(x, True), difference(x))
    assert stream.shapes == [(2, 3, 8)]


def test_a_stream_must_implement_step_or_forward() -> None:
    class Nothing(BaseStream):
        pass

    with pytest.raises(TypeError, match=r"Nothing must implement step\(\).*forward\(\)"):
        Nothing()


# ---------------------------------------------------------------------------------------------
# Timing properties


def test_timing_properties_come_from_timing(fir_stream: Any, conv: nn.Conv1d) -> None:
    stream = fir_stream(conv)
    assert stream.receptive_field == 4
    assert stream.rate == Fraction(1)
    assert stream.lookahead == Fraction(3)

    class Strided(BaseStream):
        def step(self, x: Tensor, final: bool = False) -> Tensor | None:
            return None

        def timing(self) -> Timing:
            return Timing.window(5, 2, -2)

    strided = Strided()
    assert (strided.receptive_field, strided.rate, strided.lookahead) == (
        5,
        Fraction(1, 2),
        Fraction(2),
    )


@pytest.mark.parametrize("name", ["receptive_field", "rate", "lookahead"])
def test_timing_properties_without_timing_are_missing_attributes(name: str) -> None:
    stream = LegacyDifference()
    assert not hasattr(stream, name)
    with pytest.raises(AttributeError, match=name):
        getattr(stream, name)
    with pytest.raises(NotImplementedError, match=r"LegacyDifference .*timing\(\)"):
        stream.timing()


# ---------------------------------------------------------------------------------------------
# Scripting


def test_a_scripted_stream_streams_exactly(
    fir_stream: Any, conv: nn.Conv1d, no_script_warning: None
) -> None:
    scripted = torch.jit.script(fir_stream(conv))
    x = torch.randn(2, 2, 25)
    assert_streams_exactly(conv, x, stream=scripted, partitions=3)
    unbatched = torch.randn(2, 9)
    with torch.no_grad():
        torch.testing.assert_close(scripted(unbatched, final=True), conv(unbatched))


@pytest.mark.parametrize(
    ("case", "spoil", "message"),
    [CASES[case] for case in ("rank 1", "integer", "channels", "batch")],
    ids=["rank 1", "integer", "channels", "batch"],
)
def test_a_scripted_stream_still_validates(
    fir_stream: Any,
    conv: nn.Conv1d,
    no_script_warning: None,
    case: str,
    spoil: Callable[[Tensor], Tensor],
    message: str,
) -> None:
    scripted = torch.jit.script(fir_stream(conv))
    x = torch.randn(2, 2, 20)
    with torch.no_grad():
        head = scripted(x[..., :6])
        # TorchScript re-raises as torch.jit.Error (not a RuntimeError in recent torch)
        with pytest.raises((torch.jit.Error, RuntimeError), match=message) as caught:
            scripted(spoil(x[..., 6:11]))
        assert "FirStream: " in str(caught.value)
        tail = stream_blocks(scripted, x[..., 6:], [5, 9])
        expected = conv(x)
    torch.testing.assert_close(joined([head, *tail]), expected)


def test_a_scripted_legacy_stream_without_state(no_script_warning: None) -> None:
    class LegacyScale(BaseStream):
        def forward(self, x: Tensor, final: bool = False) -> Tensor | None:
            return 3 * x

    scripted = torch.jit.script(LegacyScale())
    x = torch.randn(2, 5)
    torch.testing.assert_close(scripted(x), 3 * x)


@pytest.mark.parametrize("zeros", [False, True])
def test_state_tensor_is_never_an_inference_tensor(zeros: bool) -> None:
    like = torch.zeros(2, 3, 1, dtype=torch.float64)
    for mode in (torch.inference_mode(), torch.no_grad()):
        with mode:
            state = state_tensor([2, 3, 5], like, zeros=zeros)
        assert not state.is_inference()
        assert state.shape == (2, 3, 5)
        assert state.dtype == like.dtype
        assert state.device == like.device
        if zeros:
            assert not state.any()
        state.fill_(1.0)  # outside inference mode: updatable


def test_state_tensor_works_under_torchscript(no_script_warning: None) -> None:
    scripted = torch.jit.script(state_tensor)
    state = scripted([1, 2, 3], torch.ones(1, dtype=torch.float16), True)
    assert state.dtype == torch.float16
    assert not state.any()

"""TimeBuffer against a plain model of a stream, and the streams built on it."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from torchstreamer.core import BaseStream, TimeBuffer
from torchstreamer.testing import assert_streams_exactly, stream_blocks


class ReferenceBuffer:
    """What a TimeBuffer must behave like, written the slow and obvious way."""

    def __init__(self, batch: int, channels: int, dtype: torch.dtype) -> None:
        self.held = torch.empty(batch, channels, 0, dtype=dtype)
        self.skip = 0

    def extend(self, x: Tensor) -> Tensor:
        dropped = min(self.skip, x.shape[-1])
        self.skip -= dropped
        return torch.cat([self.held, x[..., dropped:]], dim=-1)

    def advance(self, view: Tensor, consumed: int) -> None:
        if consumed >= view.shape[-1]:
            self.skip += consumed - view.shape[-1]
            self.held = view[..., :0].clone()
        else:
            self.held = view[..., consumed:].clone()


def capacity(buffer: TimeBuffer) -> int:
    return buffer.data.shape[-1] if buffer.data.dim() == 3 else 0


# mostly short blocks; now and then one long enough for extend() to join (JOIN_FROM)
size = st.one_of(st.integers(0, 12), st.integers(250, 270))
operation = st.one_of(
    st.tuples(st.just("block"), size, st.integers(0, 20)),
    st.tuples(st.just("hold"), size, st.just(0)),
    st.tuples(st.just("clear"), st.just(0), st.just(0)),
)


@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    operations=st.lists(operation, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_matches_the_reference(
    batch: int,
    channels: int,
    dtype: torch.dtype,
    operations: list[tuple[str, int, int]],
    seed: int,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    buffer = TimeBuffer()
    reference = ReferenceBuffer(batch, channels, dtype)
    longest_view = 0
    for kind, size, consumed in operations:
        if kind == "clear":
            buffer.clear()
            reference = ReferenceBuffer(batch, channels, dtype)
            continue
        x = torch.randn(batch, channels, size, generator=generator, dtype=dtype)
        original = x.clone()
        if kind == "hold":
            # append(x) is advance(extend(x), 0)
            buffer.append(x)
            reference.advance(reference.extend(x), 0)
            assert torch.equal(x, original), "the buffer wrote to the caller's block"
            assert buffer.held == reference.held.shape[-1]
            if buffer.held > 0:
                assert torch.equal(buffer.held_samples(), reference.held)
            longest_view = max(longest_view, buffer.held)
            continue
        nothing_pending = reference.held.shape[-1] == 0 and reference.skip == 0

        view = buffer.extend(x)
        expected = reference.extend(x)
        assert torch.equal(view, expected)
        if nothing_pending:
            assert view is x, "with nothing held the block itself is returned, not a copy"
        longest_view = max(longest_view, view.shape[-1])

        buffer.advance(view, consumed)
        reference.advance(expected, consumed)
        assert torch.equal(x, original), "the buffer wrote to the caller's block"
        assert buffer.held == reference.held.shape[-1]
        if buffer.held > 0:
            assert torch.equal(buffer.held_samples(), reference.held)
        assert capacity(buffer) <= max(16, 2 * longest_view)


def test_held_samples_is_a_copy() -> None:
    buffer = TimeBuffer()
    view = buffer.extend(torch.arange(6.0).view(1, 1, 6))
    buffer.advance(view, 2)
    buffer.held_samples().zero_()
    assert buffer.extend(torch.empty(1, 1, 0)).flatten().tolist() == [2.0, 3.0, 4.0, 5.0]


def test_clear_forgets_held_and_skipped_samples() -> None:
    buffer = TimeBuffer()
    view = buffer.extend(torch.arange(4.0).view(1, 1, 4))
    buffer.advance(view, 2)
    buffer.clear()
    assert buffer.held == 0
    fresh = torch.arange(10.0, 13.0).view(1, 1, 3)
    assert buffer.extend(fresh) is fresh
    buffer.advance(fresh, 5)  # skips 2 samples of the next block
    buffer.clear()
    assert buffer.extend(fresh) is fresh


def consumption(view_length: int, span: int, stride: int) -> int:
    """Samples a window layer (span, stride) is done with after computing its outputs."""
    if view_length < span:
        return 0
    return ((view_length - span) // stride + 1) * stride


@given(span=st.integers(1, 9), stride=st.integers(1, 4), block=st.integers(1, 33))
def test_storage_is_stable_in_steady_state(span: int, stride: int, block: int) -> None:
    buffer = TimeBuffer()
    generator = torch.Generator().manual_seed(span * 1000 + stride * 100 + block)
    pointers = []
    for _ in range(4 * (span + stride) + 60):
        x = torch.randn(2, 3, block, generator=generator)
        view = buffer.extend(x)
        buffer.advance(view, consumption(view.shape[-1], span, stride))
        pointers.append(buffer.data.data_ptr())
        assert capacity(buffer) <= max(16, 2 * (span - 1 + block))
    assert len(set(pointers[-50:])) == 1, "the storage was reallocated in steady state"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_stream_of_another_dtype_gets_storage_of_its_own(dtype: torch.dtype) -> None:
    buffer = TimeBuffer()
    view = buffer.extend(torch.randn(2, 1, 5))
    buffer.advance(view, 2)
    buffer.clear()
    x = torch.arange(5, dtype=dtype).view(1, 1, 5)
    view = buffer.extend(x)
    buffer.advance(view, 2)
    assert buffer.data.dtype == dtype
    view = buffer.extend(torch.tensor([[[5.0]]], dtype=dtype))
    assert view.dtype == dtype
    assert view.flatten().tolist() == [2.0, 3.0, 4.0, 5.0]


def test_a_stream_on_the_device_under_test(device: torch.device) -> None:
    buffer = TimeBuffer()
    view = buffer.extend(torch.randn(1, 3, 5))
    buffer.advance(view, 2)  # storage on the CPU
    buffer.clear()
    x = torch.arange(12.0, device=device).view(1, 2, 6)
    view = buffer.extend(x)
    buffer.advance(view, 4)
    view = buffer.extend(x[..., :3])
    assert view.device == device
    assert view.tolist() == [[[4.0, 5.0, 0.0, 1.0, 2.0], [10.0, 11.0, 6.0, 7.0, 8.0]]]


def test_module_conversion_moves_the_held_samples() -> None:
    holder = nn.Module()
    holder.buffer = TimeBuffer()
    view = holder.buffer.extend(torch.tensor([[[1.0, 2.0, 3.0]]]))
    holder.buffer.advance(view, 1)
    holder.double()
    view = holder.buffer.extend(torch.tensor([[[4.0]]], dtype=torch.float64))
    assert view.dtype == torch.float64
    assert view.flatten().tolist() == [2.0, 3.0, 4.0]


# ---------------------------------------------------------------------------------------------
# Streams holding a TimeBuffer: snapshots, scripting and compiling.


def streamed(stream: Any, x: Tensor, sizes: list[int]) -> Tensor:
    with torch.no_grad():
        outputs = stream_blocks(stream, x, sizes)
    return torch.cat([y for y in outputs if y is not None], dim=-1)


def deepcopy_stream(stream: BaseStream) -> BaseStream:
    return copy.deepcopy(stream)


def save_and_load(stream: BaseStream) -> BaseStream:
    file = io.BytesIO()
    torch.save(stream, file)
    file.seek(0)
    loaded: BaseStream = torch.load(file, weights_only=False)
    return loaded


@pytest.mark.parametrize("fork", [deepcopy_stream, save_and_load])
@pytest.mark.parametrize("cut", [0, 2, 3, 9, 20])
def test_a_stream_resumes_from_a_snapshot(fir_stream: Any, fork: Any, cut: int) -> None:
    conv = nn.Conv1d(2, 3, 4)
    x = torch.randn(2, 2, 20)
    stream = fir_stream(conv)
    with torch.no_grad():
        expected = conv(x)
        head = stream(x[..., :cut])
        twin = fork(stream)
        # the original goes on with other data first: the copy must not see it
        stream(torch.randn_like(x[..., :7]))
        stream.reset()
        tail = twin(x[..., cut:], final=True)
    got = torch.cat([y for y in (head, tail) if y is not None], dim=-1)
    torch.testing.assert_close(got, expected)


def test_a_snapshot_shares_nothing_with_the_original(fir_stream: Any) -> None:
    conv = nn.Conv1d(1, 1, 3)
    stream = fir_stream(conv)
    with torch.no_grad():
        stream(torch.randn(1, 5))
        twin = copy.deepcopy(stream)
        assert twin.buffer.data.data_ptr() != stream.buffer.data.data_ptr()
        assert torch.equal(twin.buffer.held_samples(), stream.buffer.held_samples())


def test_scripted_stream_with_a_buffer_streams_exactly(
    fir_stream: Any, no_script_warning: None
) -> None:
    conv = nn.Conv1d(3, 2, 5).double()
    scripted = torch.jit.script(fir_stream(conv))
    x = torch.randn(2, 3, 40, dtype=torch.float64)
    assert_streams_exactly(conv, x, stream=scripted, partitions=4)


def test_scripted_stream_keeps_eager_state(fir_stream: Any, no_script_warning: None) -> None:
    conv = nn.Conv1d(1, 1, 3)
    stream = fir_stream(conv)
    x = torch.randn(1, 12)
    with torch.no_grad():
        head = stream(x[:, :5])
        scripted = torch.jit.script(stream)
        tail = scripted(x[:, 5:], final=True)
        torch.testing.assert_close(torch.cat([head, tail], dim=-1), conv(x))


def test_compiled_stream_with_a_buffer_streams_exactly(fir_stream: Any) -> None:
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    # aot_eager traces through dynamo and functionalizes the in-place writes into the buffer,
    # without the C++ compile time of inductor
    counter = CompileCounterWithBackend("aot_eager")
    conv = nn.Conv1d(2, 2, 3)
    compiled = torch.compile(fir_stream(conv), backend=counter)
    x = torch.randn(2, 2, 24)
    try:
        for sizes in ([8, 8, 8], [5, 0, 19], [24]):
            with torch.no_grad():
                torch.testing.assert_close(streamed(compiled, x, sizes), conv(x))
    finally:
        torch._dynamo.reset()
    assert counter.frame_count > 0, "nothing was compiled"


def test_storage_made_in_inference_mode_takes_later_blocks_outside_it() -> None:
    # the storage outlives the stream (clear() keeps it): a stream once run in inference mode
    # must take the next one outside it, and the other way round
    buffer = TimeBuffer()
    x = torch.arange(12.0).view(1, 2, 6)
    with torch.inference_mode():
        buffer.advance(buffer.extend(x[..., :3]), 1)
    assert not buffer.data.is_inference()
    with torch.no_grad():
        view = buffer.extend(x[..., 3:])
    torch.testing.assert_close(view, x[..., 1:])
    buffer.clear()
    with torch.inference_mode():
        buffer.advance(buffer.extend(x[..., :2]), 0)
        torch.testing.assert_close(buffer.extend(x[..., 2:4]), x[..., :4])


def test_scripted_storage_made_in_inference_mode_is_copied_outside_it(
    fir_stream: Any, no_script_warning: None
) -> None:
    conv = nn.Conv1d(2, 2, 3).double()
    scripted = torch.jit.script(fir_stream(conv))
    x = torch.randn(2, 20, dtype=torch.float64)
    with torch.inference_mode():
        head = scripted(x[:, :7])
    with torch.no_grad():
        tail = scripted(x[:, 7:], final=True)
        torch.testing.assert_close(torch.cat([head, tail], dim=-1), conv(x))

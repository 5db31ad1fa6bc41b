"""StateModule: submodules reached without nn.Module's attribute fallback, registration intact."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from torchstreamer.core import TimeBuffer
from torchstreamer.core._state import StateModule


class Holder(StateModule):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = TimeBuffer()
        self.count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = self.buffer.extend(x)
        self.buffer.advance(view, view.size(-1))
        self.count += 1
        return x


def test_submodules_are_registered_and_found_directly() -> None:
    holder = Holder()
    assert dict(holder.named_children()) == {"buffer": holder.buffer}
    assert "buffer" in vars(holder)  # the ordinary lookup finds it, no __getattr__ call
    assert vars(holder)["buffer"] is holder._modules["buffer"]
    assert "count" in vars(holder)
    assert "count" not in holder._modules


def test_assignment_and_deletion_keep_both_places_in_step() -> None:
    holder = Holder()
    other = TimeBuffer()
    holder.buffer = other
    assert holder.buffer is other
    assert holder._modules["buffer"] is other
    holder.buffer = None  # type: ignore[assignment]
    assert holder.buffer is None
    assert holder._modules["buffer"] is None
    del holder.buffer
    assert "buffer" not in holder._modules
    with pytest.raises(AttributeError):
        holder.buffer  # noqa: B018
    holder.buffer = other
    assert holder.buffer is other
    assert holder._modules["buffer"] is other
    holder.add_module("inner", nn.Identity())  # registered without __setattr__: still found
    assert isinstance(holder.inner, nn.Identity)


def test_copies_and_pickles_keep_one_submodule() -> None:
    holder = Holder()
    holder(torch.randn(1, 2, 3))
    for twin in (copy.deepcopy(holder), pickle.loads(pickle.dumps(holder))):
        assert twin.buffer is twin._modules["buffer"]
        assert twin.buffer is not holder.buffer
        assert twin.count == 1
    saved = io.BytesIO()
    torch.save(holder, saved)
    saved.seek(0)
    loaded = torch.load(saved, weights_only=False)
    assert loaded.buffer is loaded._modules["buffer"]


def test_moves_reach_the_submodule() -> None:
    holder = Holder().double()
    holder(torch.randn(1, 2, 3, dtype=torch.float64))
    assert holder.buffer.data.dtype == torch.float64
    holder.float()
    assert holder.buffer.data.dtype == torch.float32


def test_scripts(no_script_warning: None) -> None:
    scripted = torch.jit.script(Holder())
    x = torch.randn(1, 2, 3)
    assert torch.equal(scripted(x), x)

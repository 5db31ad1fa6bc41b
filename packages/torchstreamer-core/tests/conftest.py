"""Shared fixtures of the torchstreamer-core tests.

Not ``from __future__ import annotations``: ``FirStream`` is scripted, and TorchScript cannot
resolve string annotations.
"""

import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import BaseStream, TimeBuffer, Timing
from torchstreamer.testing import device_under_test, load_hypothesis_profile

load_hypothesis_profile()


class FirStream(BaseStream):
    """A hand-written stream of an unpadded, stride-1 ``nn.Conv1d`` (the valid region).

    Written here, independently of torchstreamer-layers, so that the core can be tested with
    a stateful stream that holds parameters; ``module(x)`` remains the reference.
    """

    def __init__(self, module: nn.Conv1d) -> None:
        super().__init__()
        if (module.padding, module.stride, module.dilation) != ((0,), (1,), (1,)):
            raise ValueError("FirStream takes an unpadded convolution of stride and dilation 1")
        self.module = module
        self.buffer = TimeBuffer()
        self.span = module.kernel_size[0]
        self.in_channels = module.in_channels
        self.module_hint = repr(module)

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        view = self.buffer.extend(x)
        outputs = view.size(-1) - self.span + 1
        y: Optional[Tensor] = None
        if outputs > 0:
            y = F.conv1d(view, self.module.weight, self.module.bias)
            self.buffer.advance(view, outputs)
        else:
            self.buffer.advance(view, 0)
        if final:
            self.reset_state()
        return y

    def reset_state(self) -> None:
        self.buffer.clear()

    def timing(self) -> Timing:
        return Timing.window(self.span)


@pytest.fixture
def device() -> torch.device:
    """The device under test: ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset)."""
    return device_under_test()


@pytest.fixture
def fir_stream() -> type[FirStream]:
    """The class of a hand-written stateful stream over an unpadded ``nn.Conv1d``."""
    return FirStream


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The registry module, emptied for one test and restored afterwards.

    Installed distributions are marked as already discovered, so only the handlers a test adds
    take part; tests of discovery set ``_discovered`` back to False themselves.
    """
    from torchstreamer.core import registry as module

    monkeypatch.setattr(module, "_user", {})
    monkeypatch.setattr(module, "_installed", {})
    monkeypatch.setattr(module, "_discovered", True)
    return module


@pytest.fixture
def no_script_warning() -> Iterator[None]:
    """Silences the warning that ``torch.jit.script`` is deprecated (Future- or Deprecation-)."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=category)
        yield

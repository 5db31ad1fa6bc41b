"""Shared fixtures of the torchstreamer-contrib tests."""

import os
import warnings
from collections.abc import Iterator

import pytest
import torch

from torchstreamer.testing import load_hypothesis_profile

load_hypothesis_profile()


@pytest.fixture
def device() -> torch.device:
    """The device under test: ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset).

    On CUDA, float32 convolutions are made exact IEEE arithmetic (no TF32), so that
    comparisons measure the streams, not TF32 rounding.
    """
    device = torch.device(os.environ.get("TORCHSTREAMER_TEST_DEVICE", "cpu"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("TORCHSTREAMER_TEST_DEVICE asks for CUDA, but no CUDA device is available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
    return device


@pytest.fixture
def no_script_warning() -> Iterator[None]:
    """Silences the deprecation notice that ``torch.jit.script`` emits in recent torch versions
    (a FutureWarning or a DeprecationWarning, depending on the version)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield

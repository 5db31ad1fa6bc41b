"""Shared fixtures of the torchstreamer-contrib tests."""

import warnings
from collections.abc import Iterator

import pytest
import torch

from torchstreamer.testing import device_under_test, load_hypothesis_profile

load_hypothesis_profile()


@pytest.fixture
def device() -> torch.device:
    """The device under test: ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset), with IEEE
    float32 on CUDA."""
    return device_under_test()


@pytest.fixture
def no_script_warning() -> Iterator[None]:
    """Silences the deprecation notice that ``torch.jit.script`` emits in recent torch versions
    (a FutureWarning or a DeprecationWarning, depending on the version)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield

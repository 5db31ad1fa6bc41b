"""The device the test suites run on, chosen by the environment."""

from __future__ import annotations

import os

import torch

__all__ = ["DEVICE_VARIABLE", "device_under_test", "use_ieee_float32"]

DEVICE_VARIABLE = "TORCHSTREAMER_TEST_DEVICE"


def device_under_test() -> torch.device:
    """The device named by ``TORCHSTREAMER_TEST_DEVICE`` (``cpu`` when unset), set up for exact
    comparisons.

    On CUDA it calls :func:`use_ieee_float32`, so that a float32 comparison measures the stream
    and not TF32 rounding. Needs pytest: when CUDA is asked for and no GPU is available, the
    calling test is skipped.

    Returns:
        the device.
    """
    name = os.environ.get(DEVICE_VARIABLE, "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            import pytest

            pytest.skip(f"{DEVICE_VARIABLE}={name}, but no CUDA device is available")
        use_ieee_float32()
        if str(device) == "cuda":
            # tensors report the device with its index: compare like with like
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def use_ieee_float32() -> None:
    """Makes CUDA float32 matrix products and convolutions exact IEEE arithmetic.

    TF32 off for matmul and cuDNN, cuDNN deterministic and without autotuning, and, on torch
    versions that have per-operator precision settings, ``fp32_precision = "ieee"`` for them.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    for backend in (
        torch.backends.cuda.matmul,
        getattr(torch.backends.cudnn, "conv", None),
        getattr(torch.backends.cudnn, "rnn", None),
    ):
        if backend is not None and hasattr(backend, "fp32_precision"):
            backend.fp32_precision = "ieee"

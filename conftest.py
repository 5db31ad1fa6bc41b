"""pytest options for runs from the repository root (``pytest packages``, ``pytest benchmarks``).

``--device=cuda`` runs the device-parametrised tests of every member on the GPU. It only sets
the environment variable ``TORCHSTREAMER_TEST_DEVICE``, which is what the members' own
``conftest.py`` files read: a member's tests run outside this repository (``nox -s isolated``,
or from an installed wheel) take the device from that variable alone.
"""

import os

import pytest

DEVICE_VARIABLE = "TORCHSTREAMER_TEST_DEVICE"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help=f"device of the device-parametrised tests (default: ${DEVICE_VARIABLE} or cpu); "
        "cuda forces IEEE float32 and skips those tests when no GPU is present",
    )


def pytest_configure(config: pytest.Config) -> None:
    device = config.getoption("device")
    if device is not None:
        os.environ[DEVICE_VARIABLE] = device

"""Fixtures of the benchmarks: device, thread count, timing with ratios, the 0.0.2 baseline.

Machines are shared and noisy, so every benchmark records ratios measured in the same run
(streamed against offline, torchstreamer against a baseline) beside its absolute times, in the
``extra_info`` of pytest-benchmark's JSON. Absolute figures mean something only on a quiet
machine or a GPU.

Environment:
    TORCHSTREAMER_BENCH_THREADS: intra-op threads (default 1: at small blocks one thread is as
        fast as two, and two threads on a shared machine are slowed by anything else running).
    TORCHSTREAMER_BASELINE_PATH: the ``torchstreamer`` folder of an unpacked torch-streamer
        0.0.2 wheel (``nox -s bench`` sets it); the baseline benchmarks skip without it.
    TORCHSTREAMER_TEST_DEVICE: ``cpu`` or ``cuda`` to run on that device only (``--device``
        sets it); by default both, CUDA when available.

The allocator shapes offline times (a long offline call spends much of its time in page faults
under glibc's default malloc), so the allocator settings in force are recorded too.
"""

import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

THREADS_VARIABLE = "TORCHSTREAMER_BENCH_THREADS"
BASELINE_VARIABLE = "TORCHSTREAMER_BASELINE_PATH"
DEVICE_VARIABLE = "TORCHSTREAMER_TEST_DEVICE"
BASELINE_MODULE = "torchstreamer_002"
# The benchmarks import their shared helpers (streaming.py) by module name, and pytest's
# importlib import mode puts no test folder on sys.path.
sys.path.insert(0, str(Path(__file__).parent))
# Environment variables that change how memory is allocated, recorded with every result.
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")


def _threads() -> int:
    return int(os.environ.get(THREADS_VARIABLE, "1"))


def allocator() -> str:
    """The allocator settings in force, e.g. ``glibc malloc defaults``."""
    settings = [f"{name}={os.environ[name]}" for name in ALLOCATOR_VARIABLES if name in os.environ]
    settings += [
        f"{name}={value}" for name, value in os.environ.items() if name.startswith("MALLOC_")
    ]
    return "; ".join(settings) or "glibc malloc defaults"


def pytest_configure(config: pytest.Config) -> None:
    # fixed before any benchmark runs, and the same for all of them
    torch.set_num_threads(_threads())


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"torch {torch.__version__}; {torch.get_num_threads()} intra-op threads "
        f"(${THREADS_VARIABLE}); allocator: {allocator()}"
    ]


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest) -> torch.device:
    """The CPU, and the GPU when there is one (``--device`` picks one of them)."""
    name: str = request.param
    wanted = os.environ.get(DEVICE_VARIABLE)
    if wanted is not None and wanted != name:
        pytest.skip(f"{DEVICE_VARIABLE}={wanted}")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(name)


class Timer:
    """Times callables on one device, synchronising the device inside every timed call.

    Wraps pytest-benchmark's ``benchmark`` fixture for the main measurement and times
    comparisons itself, interleaved round by round, so that a ratio is not skewed by the
    machine getting busier between two measurements.
    """

    def __init__(self, benchmark: Any, device: torch.device) -> None:
        self.benchmark = benchmark
        self.device = device
        benchmark.extra_info.update(
            device=str(device),
            device_name=(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            allocator=allocator(),
        )

    def synchronized(self, function: Callable[[], object]) -> Callable[[], object]:
        """``function`` followed by a wait for the device (pytest-benchmark does not wait)."""
        if self.device.type != "cuda":
            return function
        device = self.device

        def call() -> None:
            function()
            torch.cuda.synchronize(device)

        return call

    def measure(
        self,
        function: Callable[[], object],
        *,
        setup: Callable[[], None] | None = None,
        rounds: int,
        warmup_rounds: int = 3,
    ) -> float:
        """Benchmarks ``function`` with pytest-benchmark; returns its median in seconds.

        Args:
            function: the timed call.
            setup: run untimed before every round, e.g. to reset a stream's state.
            rounds: timed calls.
            warmup_rounds: untimed calls first.
        """
        self.benchmark.pedantic(
            self.synchronized(function),
            setup=setup,
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            iterations=1,
        )
        median: float = self.benchmark.stats.stats.median
        return median

    def compare(
        self,
        functions: dict[str, Callable[[], object]],
        *,
        setup: Callable[[], None] | None = None,
        rounds: int,
        warmup_rounds: int = 3,
    ) -> dict[str, float]:
        """Median seconds per call of each function, timed in interleaved rounds.

        The order within a round rotates from round to round.

        Args:
            functions: the timed calls, by name.
            setup: run untimed before every call of every function.
            rounds: timed calls of each function.
            warmup_rounds: untimed calls of each first.
        """
        calls = {name: self.synchronized(function) for name, function in functions.items()}
        times: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for index in range(warmup_rounds + rounds):
            # each contender takes each place in a round in turn: what one leaves behind (the
            # allocator's state, the caches) falls on every other alike
            turn = index % len(order)
            for name in order[turn:] + order[:turn]:
                call = calls[name]
                if setup is not None:
                    setup()
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                if index >= warmup_rounds:
                    times[name].append(elapsed)
        return {name: statistics.median(values) for name, values in times.items()}

    def record(self, **info: object) -> None:
        """Adds entries to the result's ``extra_info`` (block size, dtype, ratios...)."""
        self.benchmark.extra_info.update(info)


@pytest.fixture
def timer(device: torch.device, benchmark: Any) -> Timer:
    """A :class:`Timer` for the device under benchmark."""
    # the device comes first: a skipped device must skip before the benchmark fixture exists
    return Timer(benchmark, device)


def _load_baseline() -> ModuleType | None:
    if BASELINE_MODULE in sys.modules:
        return sys.modules[BASELINE_MODULE]
    location = os.environ.get(BASELINE_VARIABLE)
    if not location or not (Path(location) / "__init__.py").is_file():
        return None
    spec = importlib.util.spec_from_file_location(
        BASELINE_MODULE,
        Path(location) / "__init__.py",
        submodule_search_locations=[location],
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[BASELINE_MODULE] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def optional_baseline() -> ModuleType | None:
    """torch-streamer 0.0.2 imported as ``torchstreamer_002``, or None when it is not there.

    It cannot be installed next to this workspace (our meta-distribution has its name), so
    ``nox -s bench`` unpacks its wheel and points ``TORCHSTREAMER_BASELINE_PATH`` at it; its
    package uses relative imports only, so it loads under another name.
    """
    return _load_baseline()


@pytest.fixture(scope="session")
def baseline(optional_baseline: ModuleType | None) -> ModuleType:
    """torch-streamer 0.0.2, as :func:`optional_baseline`; skips the benchmark without it."""
    if optional_baseline is None:
        pytest.skip(f"torch-streamer 0.0.2 not found (${BASELINE_VARIABLE}); nox -s bench sets it")
    return optional_baseline

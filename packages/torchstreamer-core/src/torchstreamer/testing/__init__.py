"""Checks that a stream reproduces its module exactly, for handler authors and for tests.

``assert_streams_exactly`` streams a signal through many random partitions (empty and
one-sample blocks included) and compares every result with the module's own offline output;
``assert_minimal_latency`` checks that a stream emits each output as soon as the input
determines it; ``assert_resumes_from_snapshots`` that a stream forked or saved in mid-stream
resumes exactly. They raise ``AssertionError`` with the first differing sample.
"""

from __future__ import annotations

from ._checks import (
    assert_minimal_latency,
    assert_resumes_from_snapshots,
    assert_streams_exactly,
    determined_outputs,
    random_partition,
    stream_blocks,
    tolerance,
)
from ._devices import DEVICE_VARIABLE, device_under_test, use_ieee_float32
from ._profiles import load_hypothesis_profile

__all__ = [
    "DEVICE_VARIABLE",
    "assert_minimal_latency",
    "assert_resumes_from_snapshots",
    "assert_streams_exactly",
    "determined_outputs",
    "device_under_test",
    "load_hypothesis_profile",
    "random_partition",
    "stream_blocks",
    "tolerance",
    "use_ieee_float32",
]

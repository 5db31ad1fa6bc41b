"""StreamError and NotStreamableError: paths in a network, and pickling."""

from __future__ import annotations

import pickle

import pytest

from torchstreamer.core import NotStreamableError, StreamError


def test_the_hierarchy() -> None:
    assert issubclass(NotStreamableError, StreamError)
    assert issubclass(StreamError, ValueError)


def test_within_prefixes_the_path_level_by_level() -> None:
    error = StreamError("expected 64 channels, got 32")
    assert str(error) == "expected 64 channels, got 32"
    located = error.within("1", "Conv1d")
    assert str(located) == "1 (Conv1d): expected 64 channels, got 32"
    # the innermost module's type is kept as the error moves outwards
    located = located.within("inner", "Sequential").within("3")
    assert str(located) == "3.inner.1 (Conv1d): expected 64 channels, got 32"
    assert (located.reason, located.path, located.module_type) == (
        "expected 64 channels, got 32",
        "3.inner.1",
        "Conv1d",
    )
    assert located.__cause__ is error
    assert str(error) == "expected 64 channels, got 32", "the original is left as it was"


def test_within_without_a_type() -> None:
    assert str(StreamError("bad").within("net").within("0")) == "0.net: bad"


def test_within_keeps_the_class() -> None:
    located = NotStreamableError("circular padding").within("2", "Conv1d")
    assert type(located) is NotStreamableError
    with pytest.raises(NotStreamableError, match=r"^2 \(Conv1d\): circular padding$"):
        raise located


@pytest.mark.parametrize("cls", [StreamError, NotStreamableError])
def test_errors_survive_pickling(cls: type[StreamError]) -> None:
    error = cls("expected 4 input channels, got 3").within("net.3", "Conv1d")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert (copy.reason, copy.path, copy.module_type) == (
        error.reason,
        error.path,
        error.module_type,
    )

"""Errors of child streams, located in the network: ``3.net.1 (Conv1d): ...``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from torch import nn

from torchstreamer.core import StreamError

__all__ = ["Child", "build_child", "locate"]

Child = tuple[nn.Module, str, str]
"""A child stream, its name in the network and the class name of the module it streams."""

T = TypeVar("T")


def build_child(name: str, module: nn.Module, build: Callable[[], T]) -> T:
    """Calls ``build``; a :class:`StreamError` it raises is located at ``name``."""
    try:
        return build()
    except StreamError as error:
        raise error.within(name, type(module).__name__) from error


def locate(error: StreamError, children: Iterable[Child]) -> StreamError:
    """The error located at the child stream that raised it, found in its traceback.

    Composite streams call their children in hot loops that cannot afford to track which child
    is running; the traceback of the (rare) error says it for free: the first frame that runs a
    method of one of the children.
    """
    owners = {id(stream): (name, kind) for stream, name, kind in children}
    trace = error.__traceback__
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in owners:
            return error.within(*owners[id(owner)])
        trace = trace.tb_next
    return error

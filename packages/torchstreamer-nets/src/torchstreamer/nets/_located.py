"""Errors of child streams, located in the network: ``3.net.1 (Conv1d): ...``."""

from collections.abc import Callable, Iterable
from typing import Optional, TypeVar

import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, StreamError

__all__ = ["Child", "LocatedStream", "build_child", "locate"]

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


class LocatedStream(BaseStream):
    """A composite stream whose children's errors come out located at the child.

    Subclasses implement ``_step`` (the block logic) and ``_children``. TorchScript has no
    ``try``, so a scripted stream runs ``_step`` alone and its errors keep their own message.
    """

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if torch.jit.is_scripting():
            return self._step(x, final)
        return self._step_located(x, final)

    @torch.jit.unused
    def _step_located(self, x: Tensor, final: bool) -> Optional[Tensor]:
        try:
            return self._step(x, final)
        except StreamError as error:
            raise locate(error, self._children()) from error

    def _step(self, x: Tensor, final: bool) -> Optional[Tensor]:
        raise NotImplementedError

    def _children(self) -> list[Child]:
        raise NotImplementedError

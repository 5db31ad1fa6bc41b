"""The operations a graph stream runs on each block, one per traced node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from torch import Tensor, nn

from torchstreamer.core import BaseStream

from ._align import PathAligner
from ._channels import legacy_stream

__all__ = [
    "Attribute",
    "Call",
    "Env",
    "JoinOp",
    "MapOp",
    "Method",
    "Op",
    "Piece",
    "Slot",
    "StaticOp",
    "StreamOp",
]

Env = list[Any]
"""The value of every node on the current block: a tensor, a tuple of tensors, a constant, or
``None`` where a path has nothing yet."""


class Slot:
    """Marks an argument that is the value of another node (a constant or a parameter)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class Piece:
    """Marks an argument that is one of the signal's inputs of the operation, aligned."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class Method:
    """Calls a method by name (``x.relu()``); picklable, unlike a lambda."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(obj, self.name)(*args, **kwargs)

    def __getstate__(self) -> str:
        return self.name

    def __setstate__(self, name: str) -> None:
        self.name = name


class Attribute:
    """Reads a parameter, buffer or constant of a module on each block (weights may change)."""

    def __init__(self, owner: nn.Module, name: str) -> None:
        self.owner = owner
        self.name = name

    def __call__(self) -> Any:
        return getattr(self.owner, self.name)


class Call:
    """A function and its arguments, with markers where node values go on each block."""

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        # the common case, markers only at the top level, fills a list instead of recursing
        self.flat = not any(
            isinstance(a, (list, tuple, dict, slice)) for a in (*args, *kwargs.values())
        )
        self.marked = [i for i, a in enumerate(args) if isinstance(a, (Slot, Piece))]
        self.marked_kwargs = any(isinstance(a, (Slot, Piece)) for a in kwargs.values())

    def __call__(self, env: Env, pieces: Sequence[Tensor]) -> Any:
        if self.flat:
            args = list(self.args)
            for i in self.marked:
                args[i] = _value(args[i], env, pieces)
            kwargs = self.kwargs
            if self.marked_kwargs:
                kwargs = {k: _value(v, env, pieces) for k, v in kwargs.items()}
            return self.fn(*args, **kwargs)
        return self.fn(*_fill(self.args, env, pieces), **_fill(self.kwargs, env, pieces))


def _value(marker: Any, env: Env, pieces: Sequence[Tensor]) -> Any:
    if isinstance(marker, Piece):
        return pieces[marker.index]
    if isinstance(marker, Slot):
        return env[marker.index]
    return marker


def _fill(value: Any, env: Env, pieces: Sequence[Tensor]) -> Any:
    if isinstance(value, (Slot, Piece)):
        return _value(value, env, pieces)
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, env, pieces) for v in value)
    if isinstance(value, dict):
        return {k: _fill(v, env, pieces) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(_fill(v, env, pieces) for v in (value.start, value.stop, value.step)))
    return value


class Op:
    """One node's work on a block: reads values from the environment and writes its own."""

    out: int

    def run(self, env: Env, final: bool) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Forgets the state of the stream under way."""


class StaticOp(Op):
    """A value that does not depend on the signal (a parameter, an expression of them)."""

    def __init__(self, out: int, call: Call) -> None:
        self.out = out
        self.call = call

    def run(self, env: Env, final: bool) -> None:
        env[self.out] = self.call(env, ())


class MapOp(Op):
    """An operation on one signal value that treats every time step on its own."""

    def __init__(self, out: int, source: int, call: Call) -> None:
        self.out = out
        self.source = source
        self.call = call

    def run(self, env: Env, final: bool) -> None:
        x = env[self.source]
        env[self.out] = None if x is None else self.call(env, (x,))


class JoinOp(Op):
    """An operation on several signal values: they are aligned first, then combined."""

    def __init__(self, out: int, sources: list[int], call: Call, aligner: PathAligner) -> None:
        self.out = out
        self.sources = sources
        self.call = call
        self.aligner = aligner

    def run(self, env: Env, final: bool) -> None:
        pieces = self.aligner.align([env[s] for s in self.sources], final)
        if final:
            self.aligner.restart()
        env[self.out] = None if pieces is None else self.call(env, pieces)

    def restart(self) -> None:
        self.aligner.restart()


class StreamOp(Op):
    """A stream (of a module, a time slice, a padding) fed one signal value."""

    def __init__(self, out: int, source: int, stream: BaseStream, name: str, kind: str) -> None:
        self.out = out
        self.source = source
        self.stream = stream
        self.name = name
        self.kind = kind
        self.legacy = legacy_stream(stream)
        # output channels, for the empty block that flushes what follows on final=True
        self.channels = -1

    def run(self, env: Env, final: bool) -> None:
        x: Optional[Tensor] = env[self.source]
        y: Optional[Tensor] = None
        if x is None:
            # nothing arrived yet on this path; on final there is nothing to flush either
            if final:
                self.stream.reset()
        elif final and self.legacy and x.size(-1) == 0:
            self.stream.reset()
        else:
            y = self.stream.step(x, final)
        if y is not None:
            self.channels = y.size(1)
        elif final and self.channels >= 0 and x is not None:
            y = x.new_empty((x.size(0), self.channels, 0))
        env[self.out] = y

    def restart(self) -> None:
        self.stream.reset_state()

"""The registry: which stream handles which module type."""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from torch import nn

from .errors import NotStreamableError, StreamError
from .stream import BaseStream

__all__ = [
    "ENTRY_POINT_GROUP",
    "Edges",
    "Handler",
    "StreamFactory",
    "create_stream",
    "handled_type",
    "register_streamer",
    "unregister_streamer",
]

Edges = Literal["pad", "valid"]
"""How a stream treats the module's padding: ``"pad"`` applies it at the stream's start and, on
``final=True``, at its end, exactly as ``module(x)`` does; ``"valid"`` ignores it and returns the
valid region, as torch-streamer 0.0.2 did."""

StreamFactory = Callable[..., "BaseStream | None"]
"""Builds a stream for a module: ``factory(module)`` or ``factory(module, edges=...)``. It may
return ``None`` to pass the module on to the next, less specific handler."""

ENTRY_POINT_GROUP = "torchstreamer.handlers"
"""Entry-point group through which installed distributions register their handlers. Each entry
point names a callable that returns an iterable of :class:`Handler`."""

EDGES: tuple[str, ...] = ("pad", "valid")


@dataclass(frozen=True)
class Handler:
    """A factory registered for a module type by an installed distribution.

    Attributes:
        module_type: the module class handled (subclasses too, unless a more specific
            handler exists).
        factory: builds the stream; see :data:`StreamFactory`.
        priority: among handlers of distributions for the same type, the higher is tried
            first. (Default: 0)
    """

    module_type: type[nn.Module]
    factory: StreamFactory
    priority: int = 0


@dataclass(frozen=True)
class _Entry:
    factory: StreamFactory
    takes_edges: bool
    origin: str


_lock = threading.RLock()
_user: dict[type, _Entry] = {}
_installed: dict[type, list[tuple[int, _Entry]]] = {}
_discovered = False


def register_streamer(module_type: type[nn.Module], factory: StreamFactory) -> None:
    """Registers the stream factory for a module type.

    The most specific registered type wins: a handler for a subclass of ``nn.Conv1d`` is used
    for that subclass instead of the built-in convolution stream, and a handler registered here
    replaces a built-in one for the same type. Registering a type again replaces its factory.

    Args:
        module_type: the ``nn.Module`` subclass to handle.
        factory: a callable taking the module (and, if it accepts it, the keyword ``edges``)
            and returning a :class:`~torchstreamer.BaseStream`, or ``None`` to decline.

    Raises:
        TypeError: if ``module_type`` is not an ``nn.Module`` subclass or ``factory`` is not
            callable.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> class Gain(torch.nn.Module):
        ...     def forward(self, x):
        ...         return 2 * x
        >>> class GainStream(pts.BaseStream):
        ...     def __init__(self, module):
        ...         super().__init__()
        ...         self.module = module
        ...     def step(self, x, final=False):
        ...         return self.module(x) if x.shape[-1] else None
        >>> pts.register_streamer(Gain, GainStream)
        >>> type(pts.create_stream(Gain())).__name__
        'GainStream'
    """
    _check_type(module_type)
    entry = _entry(factory, origin="register_streamer")
    with _lock:
        _user[module_type] = entry


def unregister_streamer(module_type: type[nn.Module]) -> None:
    """Removes the factory that :func:`register_streamer` set for exactly this type.

    Handlers of installed distributions stay. Does nothing if none was registered.
    """
    with _lock:
        _user.pop(module_type, None)


def create_stream(module: nn.Module, *, edges: Edges = "pad") -> BaseStream:
    """Builds the stream for a module through the registry.

    Handlers are looked up along the module's class hierarchy, most specific class first; at
    each class a handler from :func:`register_streamer` comes before those of installed
    distributions. A factory that returns ``None`` passes the module on to the next handler.

    Args:
        module: the module to stream.
        edges: ``"pad"`` (default) streams exactly ``module(x)``, padding included;
            ``"valid"`` ignores the module's padding, as torch-streamer 0.0.2 did.

    Returns:
        a new stream over ``module``; it shares the module's parameters.

    Raises:
        NotStreamableError: if no handler accepts the module.
        StreamError: if ``edges`` is not one of ``"pad"`` and ``"valid"``.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> stream = pts.create_stream(torch.nn.Conv1d(1, 4, 3, padding=1))
        >>> stream.receptive_field
        3
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"create_stream expects an nn.Module, got {type(module).__name__}")
    check_edges(edges)
    _discover()
    for entry in _candidates(type(module)):
        stream = entry.factory(module, edges=edges) if entry.takes_edges else entry.factory(module)
        if stream is None:
            continue
        if not isinstance(stream, BaseStream):
            raise TypeError(
                f"the stream factory for {type(module).__name__} ({entry.origin}) returned "
                f"{type(stream).__name__}, not a BaseStream"
            )
        return stream
    name = type(module).__name__
    hint = (
        ""
        if _installed
        else " No distribution with built-in handlers is installed: "
        "`pip install torchstreamer-layers` adds the layer handlers."
    )
    raise NotStreamableError(
        f"no stream handler accepts {name}; write a BaseStream for it and register it with "
        f"torchstreamer.register_streamer({name}, factory).{hint}"
    )


def handled_type(module_type: type) -> type | None:
    """The most specific class of ``module_type`` with a handler of its own, if any.

    Handlers registered for ``nn.Module`` itself (the fallbacks that every module reaches) do
    not count. Composite streams use this to tell a module with a dedicated stream from one
    they should look inside.

    Args:
        module_type: a module class.

    Returns:
        the class (``module_type`` or a base of it) whose handler would be tried first, or
        ``None`` if only fallbacks would.
    """
    _discover()
    with _lock:
        for cls in module_type.__mro__:
            if cls is nn.Module:
                return None
            if cls in _user or cls in _installed:
                return cls
    return None


def check_edges(edges: str) -> None:
    """Raises :class:`StreamError` unless ``edges`` is ``"pad"`` or ``"valid"``."""
    if edges not in EDGES:
        raise StreamError(f"edges must be 'pad' or 'valid', got {edges!r}")


def _candidates(module_type: type) -> Iterable[_Entry]:
    with _lock:
        chain = [
            (cls, _user.get(cls), [entry for _, entry in _installed.get(cls, [])])
            for cls in module_type.__mro__
        ]
    for _, user, installed in chain:
        if user is not None:
            yield user
        yield from installed


def _discover() -> None:
    """Loads the handlers of installed distributions, once."""
    global _discovered
    if _discovered:
        return
    with _lock:
        # another thread may have finished while this one waited for the lock
        if not _discovered:
            _load_entry_points()
            _discovered = True


def _load_entry_points() -> None:
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {point.name!r}"
        try:
            # checked in full before any is added: a bad list adds nothing
            handlers = [_checked(handler, origin=origin) for handler in point.load()()]
        except Exception as error:  # a broken plug-in must not break the others
            warnings.warn(
                f"torchstreamer: could not load the stream handlers of entry point "
                f"{point.name!r} ({point.value}): {error!r}",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        for handler, entry in handlers:
            _insert(handler, entry)


def _checked(handler: object, *, origin: str) -> tuple[Handler, _Entry]:
    if not isinstance(handler, Handler):
        raise TypeError(f"expected a torchstreamer Handler, got {handler!r}")
    _check_type(handler.module_type)
    return handler, _entry(handler.factory, origin=origin)


def _insert(handler: Handler, entry: _Entry) -> None:
    entries = _installed.setdefault(handler.module_type, [])
    entries.append((handler.priority, entry))
    entries.sort(key=lambda pair: -pair[0])


def _check_type(module_type: object) -> None:
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"expected an nn.Module subclass, got {module_type!r}")


def _entry(factory: StreamFactory, *, origin: str) -> _Entry:
    if not callable(factory):
        raise TypeError(f"the stream factory must be callable, got {factory!r}")
    return _Entry(factory, _accepts_edges(factory), origin)


def _accepts_edges(factory: StreamFactory) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "edges" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )

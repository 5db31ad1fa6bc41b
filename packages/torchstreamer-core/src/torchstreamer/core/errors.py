"""The exceptions every stream raises."""

from __future__ import annotations

__all__ = ["NotStreamableError", "StreamError"]


class StreamError(ValueError):
    """A block, a module or an option that a stream cannot accept.

    Raised before any stream state changes, so a rejected block loses nothing: fix it and call
    the stream again. Composite streams re-raise a child's error with the child's path in the
    network in front of the message (``net.3.inner.1 (Conv1d): expected 64 channels, got 32``).

    Attributes:
        reason: the message without the path.
        path: dotted path of the module in the network that raised, or ``""`` at the top.
        module_type: class name of that module, or ``""`` when unknown.
    """

    def __init__(self, reason: str, *, path: str = "", module_type: str = "") -> None:
        self.reason = reason
        self.path = path
        self.module_type = module_type
        super().__init__(self._message())

    def _message(self) -> str:
        if not self.path:
            return self.reason
        where = f"{self.path} ({self.module_type})" if self.module_type else self.path
        return f"{where}: {self.reason}"

    def within(self, name: str, module_type: str = "") -> StreamError:
        """Returns the same error, located one level deeper in a network.

        Args:
            name: the child's name in its parent (``"3"`` in a Sequential, ``"inner"``...).
            module_type: the child's class name, used when the error had none yet.

        Returns:
            a new error of the same class whose ``path`` starts with ``name``.
        """
        path = f"{name}.{self.path}" if self.path else name
        error = type(self)(self.reason, path=path, module_type=self.module_type or module_type)
        error.__cause__ = self.__cause__ or self
        return error

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only fields must survive pickling (multiprocessing, torch.save of errors)
        return (_rebuild, (type(self), self.reason, self.path, self.module_type))


def _rebuild(cls: type[StreamError], reason: str, path: str, module_type: str) -> StreamError:
    return cls(reason, path=path, module_type=module_type)


class NotStreamableError(StreamError):
    """A module, or an option of a module, that cannot be streamed exactly.

    Raised when a stream is built (circular padding, adaptive pooling, normalisation over time,
    an unregistered module that is not element-wise, ...), with a message that says what to do:
    usually register a handler with :func:`torchstreamer.register_streamer`.
    """

"""A module base whose state is cheap to read and update on every block."""

from typing import Any

from torch import nn

__all__ = ["StateModule"]

_PLAIN = (int, bool, float, str)


class StateModule(nn.Module):
    """An ``nn.Module`` whose counters and submodules cost little to reach on every block.

    Streams read their submodules (buffers, child streams, the wrapped layer) and update a
    handful of counters on every block, and at small blocks ``nn.Module``'s attribute machinery
    costs more than the work itself:

    - ``nn.Module.__setattr__`` checks each assignment against the module's parameters, buffers
      and submodules. Plain values (int, bool, float, str) can never be any of those, so they
      are set directly.
    - A submodule lives in ``_modules`` and is found by ``nn.Module.__getattr__``, which Python
      calls only after its ordinary lookup has failed. A ``StateModule`` also keeps each
      submodule in its instance ``__dict__``, where the ordinary lookup finds it at once; the
      registration in ``_modules`` (what ``children()``, ``state_dict()``, ``.to()`` and
      TorchScript see) is unchanged, and assignment and deletion keep the two in step.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) in _PLAIN:
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            self.__dict__[name] = modules[name]

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        self.__dict__.pop(name, None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call]
        for name, module in self._modules.items():
            self.__dict__[name] = module

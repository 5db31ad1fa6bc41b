"""A module base whose state is cheap to read and update on every block."""

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["StateModule", "state_tensor"]

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


def state_tensor(size: list[int], like: Tensor, zeros: bool = False) -> Tensor:
    """A tensor for state that a stream keeps and updates in place from block to block.

    Shaped ``size``, with ``like``'s dtype and device, uninitialised (or zero with
    ``zeros=True``), and never an inference tensor: a tensor made under
    ``torch.inference_mode()`` cannot be updated in place outside it, so state made for a
    block that came in inference mode would break the stream on a later block that does not
    (or on the next stream, where the storage is reused). Use it for whatever a stream
    allocates once and writes into later; outputs and state that is replaced rather than
    updated need nothing special.

    Under TorchScript, which cannot leave inference mode, this is ``torch.empty`` (or
    ``torch.zeros``): a scripted stream must stay in or out of inference mode for good.

    Example:
        >>> with torch.inference_mode():
        ...     held = state_tensor([1, 2, 8], torch.zeros(1, 2, 3))
        >>> held.is_inference()
        False
    """
    if torch.jit.is_scripting():
        if zeros:
            return torch.zeros(size, dtype=like.dtype, device=like.device)
        return torch.empty(size, dtype=like.dtype, device=like.device)
    return _outside_inference_mode(size, like, zeros)


@torch.jit.unused
def _outside_inference_mode(size: list[int], like: Tensor, zeros: bool) -> Tensor:
    make = torch.zeros if zeros else torch.empty
    if not torch.is_inference_mode_enabled():
        return make(size, dtype=like.dtype, device=like.device)
    with torch.inference_mode(False):
        return make(size, dtype=like.dtype, device=like.device)

"""Weights of weight-normed and parametrized layers, recomputed only when they change."""

from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["LayerWeight", "WeightCache", "is_reparametrized"]


def is_reparametrized(module: nn.Module) -> bool:
    """Whether ``module.weight`` is computed from other tensors on each forward.

    True for ``torch.nn.utils.parametrizations.weight_norm`` and any other parametrization of
    ``weight``, and for the legacy ``torch.nn.utils.weight_norm`` hook.
    """
    return parametrize.is_parametrized(module, "weight") or _legacy_hook(module) is not None


class WeightCache:
    """The current ``weight`` of a reparametrized module, computed once per change.

    A change is any in-place update of a source tensor (an optimizer step, ``load_state_dict``),
    a new source tensor, or a move to another device or dtype; each bumps the key this cache
    compares. While autograd records and a source needs gradients, the weight is recomputed on
    every call so that gradients reach the sources.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.key: Optional[tuple[Any, ...]] = None
        self.value: Optional[Tensor] = None

    @torch.jit.unused
    def get(self) -> Tensor:
        sources = self._sources()
        if torch.is_grad_enabled() and any(t.requires_grad for t in sources):
            return self._compute()
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in sources)
        if key != self.key or self.value is None:
            with torch.no_grad():
                self.value = self._compute()
            self.key = key
        return self.value

    def _sources(self) -> list[Tensor]:
        if parametrize.is_parametrized(self.module, "weight"):
            parametrizations: Any = self.module.parametrizations
            return list(parametrizations["weight"].parameters())
        hook = _legacy_hook(self.module)
        assert hook is not None
        return [getattr(self.module, hook.name + "_g"), getattr(self.module, hook.name + "_v")]

    def _compute(self) -> Tensor:
        hook = _legacy_hook(self.module)
        if hook is not None:
            return hook.compute_weight(self.module)  # type: ignore[no-any-return]
        weight: Any = self.module.weight
        return weight  # type: ignore[no-any-return]


def _legacy_hook(module: nn.Module) -> Any:
    for hook in module._forward_pre_hooks.values():
        if type(hook).__name__ == "WeightNorm" and getattr(hook, "name", None) == "weight":
            return hook
    return None


class LayerWeight:
    """Mixin for the streams of layers with a ``weight`` (convolutions, transposed ones).

    :meth:`track_weight` in ``__init__``, then :meth:`current_weight` on every block: the
    module's own weight, or for a weight-normed or otherwise parametrized layer the cached one,
    recomputed only when its sources change.
    """

    if TYPE_CHECKING:  # for type checkers only: TorchScript rejects module annotations
        module: Any
        reparametrized: bool
        weights: WeightCache
        layer_parameters: dict[str, Optional[nn.Parameter]]

    def track_weight(self, module: nn.Module) -> None:
        self.reparametrized = is_reparametrized(module)
        self.weights = WeightCache(module)
        # the layer's own parameter table, read on every block: a dict lookup costs far less
        # than nn.Module's attribute lookup, and the table is always current (a parameter
        # assigned anew replaces its entry; .to() and in-place updates keep the entry)
        self.layer_parameters = module._parameters
        self.matrix_of: Optional[tuple[Tensor, int, Tensor]] = None

    def current_weight(self) -> Tensor:
        """The layer's weight, recomputed only when a parametrization's sources change."""
        if torch.jit.is_scripting():
            return self.module.weight  # type: ignore[no-any-return]
        if self.reparametrized:
            return self.weights.get()
        return self.layer_parameters["weight"]  # type: ignore[return-value]

    def current_matrix(self) -> Tensor:
        """The weight as a ``[size(0), rest]`` matrix: a view, made again only for a new weight.

        A new weight is another tensor or new storage (``.to()``, ``.data =``); in-place
        updates reach the view by themselves.
        """
        weight = self.current_weight()
        if torch.jit.is_scripting() or torch.compiler.is_compiling():
            return weight.reshape(weight.size(0), -1)
        kept = self.matrix_of
        if kept is not None and kept[0] is weight and kept[1] == weight.data_ptr():
            return kept[2]
        matrix = weight.reshape(weight.size(0), -1)
        self.matrix_of = (weight, weight.data_ptr(), matrix)
        return matrix

    def current_bias(self) -> Optional[Tensor]:
        """The layer's bias, or None."""
        if torch.jit.is_scripting():
            return self.module.bias  # type: ignore[no-any-return]
        return self.layer_parameters.get("bias")

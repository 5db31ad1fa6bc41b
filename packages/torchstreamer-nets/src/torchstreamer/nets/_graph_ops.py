"""Which traced operations a graph stream can run block by block, and how.

A graph stream runs the operations of a traced ``forward`` on blocks. That is exact for an
operation that treats every time step on its own (arithmetic, activations, operations along
channels): applied to a block, it gives that block's part of the offline result. Everything else
is refused unless the graph stream has a dedicated way to run it (modules, time slices, padding).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "PER_CHANNEL_OPERANDS",
    "ChannelRule",
    "channel_rule",
    "inplace_twin",
    "is_full",
    "is_pointwise",
    "rule_dims",
    "split_time_index",
    "time_extent",
]

_OPERATORS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
    operator.mod, operator.pow, operator.neg, operator.pos, operator.abs, operator.invert,
    operator.and_, operator.or_, operator.xor, operator.eq, operator.ne, operator.lt,
    operator.le, operator.gt, operator.ge,
}  # fmt: skip

_TORCH_NAMES = """
    abs absolute acos acosh add addcdiv addcmul asin asinh atan atan2 atanh bitwise_and
    bitwise_not bitwise_or bitwise_xor ceil clamp clamp_max clamp_min clip copysign cos cosh
    deg2rad div divide eq erf erfc erfinv exp exp2 expm1 float_power floor floor_divide fmax
    fmin fmod frac ge gt heaviside hypot isfinite isinf isnan le lerp lgamma log log10 log1p
    log2 logaddexp logaddexp2 logical_and logical_not logical_or logical_xor logit lt maximum
    minimum mul multiply nan_to_num ne neg negative pow rad2deg reciprocal relu remainder round
    rsqrt sigmoid sign signbit sin sinc sinh sqrt square sub subtract tan tanh true_divide trunc
    where xlogy zeros_like ones_like full_like
"""
_FUNCTIONAL_NAMES = """
    celu elu gelu hardshrink hardsigmoid hardswish hardtanh leaky_relu logsigmoid mish relu
    relu6 rrelu selu sigmoid silu softplus softshrink softsign tanh tanhshrink threshold
    dropout dropout1d alpha_dropout feature_alpha_dropout prelu batch_norm
"""
_METHOD_NAMES = (
    _TORCH_NAMES
    + """
    contiguous clone detach float double half bfloat16 to type type_as masked_fill
    """
)

_POINTWISE_FUNCTIONS: set[object] = {
    *_OPERATORS,
    *(getattr(torch, name) for name in _TORCH_NAMES.split() if hasattr(torch, name)),
    *(getattr(F, name) for name in _FUNCTIONAL_NAMES.split() if hasattr(F, name)),
}
_POINTWISE_METHODS = set(_METHOD_NAMES.split())

# per-channel parameters, not signals: these functions broadcast them along channels
PER_CHANNEL_OPERANDS = {F.prelu, F.batch_norm}

_INPLACE_OPERATORS: dict[object, object] = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
    operator.imod: operator.mod, operator.ipow: operator.pow, operator.iand: operator.and_,
    operator.ior: operator.or_, operator.ixor: operator.xor,
}  # fmt: skip


def is_pointwise(kind: str, target: object) -> bool:
    """Whether a ``call_function``/``call_method`` treats every sample on its own."""
    if kind == "call_method":
        return isinstance(target, str) and target in _POINTWISE_METHODS
    try:
        return target in _POINTWISE_FUNCTIONS
    except TypeError:  # unhashable targets are no function of ours
        return False


def inplace_twin(kind: str, target: object) -> object | None:
    """The out-of-place form of an in-place operation (``x += y``, ``x.relu_()``), else None."""
    if kind == "call_method" and isinstance(target, str):
        if (
            target.endswith("_")
            and not target.startswith("_")
            and target[:-1] in _POINTWISE_METHODS
        ):
            return target[:-1]
        return None
    try:
        return _INPLACE_OPERATORS.get(target)
    except TypeError:
        return None


@dataclass(frozen=True)
class ChannelRule:
    """Where an operation along one dimension takes that dimension and ``keepdim``.

    Attributes:
        dim_at: position of ``dim`` among the arguments after the tensor (its first argument
            is the tensor; for ``cat`` the list).
        dim_default: ``dim`` when it is not given (None: it must be given).
        keepdim_at: position of ``keepdim``, or None when the result keeps every dimension.
        splits: whether the result is a tuple of tensors (``chunk``, ``split``).
    """

    dim_at: int
    dim_default: int | None
    keepdim_at: int | None = None
    splits: bool = False


_REDUCTIONS = ("sum", "mean", "amax", "amin", "prod", "logsumexp")
_CHANNEL_FUNCTIONS: dict[object, ChannelRule] = {
    torch.cat: ChannelRule(0, 0),
    torch.concat: ChannelRule(0, 0),
    torch.concatenate: ChannelRule(0, 0),
    torch.softmax: ChannelRule(0, None),
    torch.log_softmax: ChannelRule(0, None),
    F.softmax: ChannelRule(0, None),
    F.log_softmax: ChannelRule(0, None),
    F.softmin: ChannelRule(0, None),
    F.glu: ChannelRule(0, -1),
    F.normalize: ChannelRule(1, 1),
    torch.chunk: ChannelRule(1, 0, splits=True),
    torch.split: ChannelRule(1, 0, splits=True),
    torch.cumsum: ChannelRule(0, None),
    **{getattr(torch, name): ChannelRule(0, None, keepdim_at=1) for name in _REDUCTIONS},
}
_CHANNEL_METHODS: dict[str, ChannelRule] = {
    "softmax": ChannelRule(0, None),
    "log_softmax": ChannelRule(0, None),
    "chunk": ChannelRule(1, 0, splits=True),
    "split": ChannelRule(1, 0, splits=True),
    "cumsum": ChannelRule(0, None),
    **{name: ChannelRule(0, None, keepdim_at=1) for name in _REDUCTIONS},
}
# the keyword names, for arguments given by keyword
_DIM_KEYWORDS = ("dim", "axis")


def channel_rule(kind: str, target: object) -> ChannelRule | None:
    """The dimension rule of an operation that works along one dimension, if it is one."""
    if kind == "call_method":
        return _CHANNEL_METHODS.get(target) if isinstance(target, str) else None
    try:
        return _CHANNEL_FUNCTIONS.get(target)
    except TypeError:
        return None


def rule_dims(
    rule: ChannelRule, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[object, object]:
    """The ``dim`` and ``keepdim`` an operation was called with (arguments after the tensor)."""
    rest = args[1:]
    dim: object = rule.dim_default
    for name in _DIM_KEYWORDS:
        if name in kwargs:
            dim = kwargs[name]
    if len(rest) > rule.dim_at:
        dim = rest[rule.dim_at]
    keepdim: object = True
    if rule.keepdim_at is not None:
        keepdim = kwargs.get(
            "keepdim", rest[rule.keepdim_at] if len(rest) > rule.keepdim_at else False
        )
    return dim, keepdim


def split_time_index(index: object) -> tuple[tuple[Any, ...], slice] | None:
    """Splits an index of a ``[B, C, T]`` tensor into its batch/channel part and its time slice.

    Returns:
        ``(index of the first two dimensions, slice of time)``, or None when the index does
        something else to time or the rank (an integer or tensor on time, ``None``, ...).
    """
    parts = index if isinstance(index, tuple) else (index,)
    if sum(part is Ellipsis for part in parts) > 1:
        return None
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        fill = 3 - (len(parts) - 1)
        if fill < 0:
            return None
        parts = parts[:at] + (slice(None),) * fill + parts[at + 1 :]
    if len(parts) > 3:
        return None
    parts = parts + (slice(None),) * (3 - len(parts))
    head, time = parts[:2], parts[2]
    if not all(isinstance(part, slice) for part in parts):
        return None
    for part in parts:
        if not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool))
            for v in (part.start, part.stop, part.step)
        ):
            return None
    if head[0] != slice(None):
        return None
    return head, time


def is_full(part: slice) -> bool:
    """Whether a slice keeps everything."""
    return part.start in (None, 0) and part.stop is None and part.step in (None, 1)


def time_extent(value: object) -> int:
    """How many time steps a constant operand spans when broadcast against ``[B, C, T]``."""
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        return int(value.size(-1))
    return 1

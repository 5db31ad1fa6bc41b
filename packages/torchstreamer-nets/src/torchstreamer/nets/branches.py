"""Branches fed the same input: ``Parallel1d`` (summed) and ``Concat1d`` (concatenated)."""

import torch
from torch import Tensor, nn

from torchstreamer.core import Edges, StreamError

from ._paths import Paths1dStream, check_forward, crop_to

__all__ = ["Concat1d", "Concat1dStream", "Parallel1d", "Parallel1dStream"]


def _shortest(outputs: list[Tensor]) -> list[Tensor]:
    length = min(y.shape[-1] for y in outputs)
    return [crop_to(y, length) for y in outputs]


class Parallel1d(nn.Module):
    """The sum (or mean) of several branches fed the same input.

    As in HiFi-GAN's multi-receptive-field fusion. Branches of different lengths (unpadded
    layers of different sizes) are cropped to the shortest symmetrically, as :class:`Residual1d`
    crops: a branch ``p`` samples longer loses ``p // 2`` samples on the left and the rest on
    the right. The sum runs left to right over the branches.

    Args:
        *branches: the branches, at least one.
        reduce: ``"sum"`` or ``"mean"`` (the sum divided by the number of branches).
            (Default: ``"sum"``)

    Raises:
        ValueError: without branches, or for another ``reduce``.

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in, ``[B, C_out, T_out]`` or ``[C_out, T_out]``
        out, ``T_out`` being the shortest branch's length.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> fusion = pts.Parallel1d(
        ...     torch.nn.Conv1d(4, 4, 3, padding=1), torch.nn.Conv1d(4, 4, 7, padding=3),
        ...     reduce="mean",
        ... )
        >>> fusion(torch.randn(4, 20)).shape
        torch.Size([4, 20])
    """

    def __init__(self, *branches: nn.Module, reduce: str = "sum") -> None:
        super().__init__()
        if not branches:
            raise ValueError("Parallel1d needs at least one branch")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"Parallel1d: reduce must be 'sum' or 'mean', got {reduce!r}")
        self.branches = nn.ModuleList(branches)
        self.reduce = reduce

    def forward(self, x: Tensor) -> Tensor:
        outputs = _shortest([branch(x) for branch in self.branches])
        y = outputs[0]
        for other in outputs[1:]:
            y = y + other
        return y / len(outputs) if self.reduce == "mean" else y

    def extra_repr(self) -> str:
        return f"reduce={self.reduce!r}" if self.reduce != "sum" else ""


class Concat1d(nn.Module):
    """The branches' outputs, fed the same input, concatenated along channels (Inception-style).

    Branches of different lengths are cropped to the shortest symmetrically, as
    :class:`Parallel1d` crops.

    Args:
        *branches: the branches, at least one.

    Raises:
        ValueError: without branches.

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in, ``[B, sum C_i, T_out]`` or ``[sum C_i, T_out]``
        out, ``T_out`` being the shortest branch's length.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> block = pts.Concat1d(torch.nn.Conv1d(4, 2, 1), torch.nn.Conv1d(4, 3, 5))
        >>> block(torch.randn(4, 20)).shape
        torch.Size([5, 16])
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if not branches:
            raise ValueError("Concat1d needs at least one branch")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(_shortest([branch(x) for branch in self.branches]), dim=-2)


class Parallel1dStream(Paths1dStream):
    """Streams a :class:`Parallel1d` exactly: each branch streamed, outputs aligned and summed.

    Outputs of the branches that are ahead (less lookahead, or longer and so cropped more)
    wait until every branch has its part of an output; each output is emitted as soon as the
    slowest branch allows.

    Args:
        module: the branches.
        edges: ``"pad"`` reproduces ``module(x)`` with the branches' padding; ``"valid"``
            ignores padding. (Default: ``"pad"``)

    Raises:
        NotStreamableError: if the branches run at different rates, if their alignment depends
            on the signal's length, or if a layer inside cannot be streamed (the message starts
            with its path, e.g. ``branches.1.0 (GroupNorm): ...``).
        StreamError: if ``module`` is not a ``Parallel1d``, or branches expect different
            channel counts.

    Shape:
        as :class:`Parallel1d`.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> fusion = pts.Parallel1d(torch.nn.Conv1d(3, 3, 3, padding=1), torch.nn.Conv1d(3, 3, 5))
        >>> stream = pts.Parallel1dStream(fusion)
        >>> x = torch.randn(3, 30)
        >>> blocks = [stream(x[:, i : i + 4], final=i + 4 >= 30) for i in range(0, 30, 4)]
        >>> y = torch.cat([b for b in blocks if b is not None], dim=-1)  # None: nothing yet
        >>> torch.testing.assert_close(y, fusion(x))
    """

    def __init__(self, module: Parallel1d, *, edges: Edges = "pad") -> None:
        if not isinstance(module, Parallel1d):
            raise StreamError(
                f"Parallel1dStream: expected a Parallel1d, got {type(module).__name__}"
            )
        check_forward(module, Parallel1d, "Parallel1dStream")
        branches = [(f"branches.{k}", branch) for k, branch in enumerate(module.branches)]
        super().__init__(branches, edges=edges, identity=False, combine=module.reduce)


class Concat1dStream(Paths1dStream):
    """Streams a :class:`Concat1d` exactly: each branch streamed, outputs aligned, concatenated.

    Args:
        module: the branches.
        edges: ``"pad"`` reproduces ``module(x)`` with the branches' padding; ``"valid"``
            ignores padding. (Default: ``"pad"``)

    Raises:
        NotStreamableError: as :class:`Parallel1dStream`.
        StreamError: if ``module`` is not a ``Concat1d``, or branches expect different
            channel counts.

    Shape:
        as :class:`Concat1d`.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> block = pts.Concat1d(torch.nn.Conv1d(2, 2, 1), torch.nn.Conv1d(2, 3, 5, padding=2))
        >>> stream = pts.Concat1dStream(block)
        >>> x = torch.randn(2, 30)
        >>> blocks = [stream(x[:, i : i + 4], final=i + 4 >= 30) for i in range(0, 30, 4)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), block(x))
    """

    def __init__(self, module: Concat1d, *, edges: Edges = "pad") -> None:
        if not isinstance(module, Concat1d):
            raise StreamError(f"Concat1dStream: expected a Concat1d, got {type(module).__name__}")
        check_forward(module, Concat1d, "Concat1dStream")
        branches = [(f"branches.{k}", branch) for k, branch in enumerate(module.branches)]
        super().__init__(branches, edges=edges, identity=False, combine="cat")

"""A time-axis buffer for stream state, in one preallocated tensor."""


import torch
from torch import Tensor, nn

__all__ = ["TimeBuffer"]


class TimeBuffer(nn.Module):
    """The unconsumed tail of a ``[B, C, T]`` stream, held in one reusable tensor.

    A stream calls :meth:`extend` with each new block and gets back the held samples followed by
    the block as one tensor; it computes what it can, then calls :meth:`advance` to say how many
    leading samples it no longer needs. The rest stays held for the next block.

    The storage is allocated once and reused: held samples are never moved on a block unless
    the free space behind them runs out, and when nothing is held the block is returned as it
    is, without a copy. So a layer whose windows do not overlap (stride at least the kernel)
    copies nothing, and an overlapping one copies only the block and, now and then, its tail.
    Memory stays bounded by the largest block plus what the layer holds back.

    The tensor returned by :meth:`extend` is valid until the next call of :meth:`extend` or
    :meth:`advance`; compute from it, never return it or keep it. The buffer never writes to
    a block it was given.

    Works under ``torch.jit.script`` and ``torch.compile``; ``copy.deepcopy`` and
    ``torch.save`` capture the held samples, so a stream can be forked or saved mid-stream.

    Example:
        >>> buffer = TimeBuffer()
        >>> view = buffer.extend(torch.arange(5.0).view(1, 1, 5))
        >>> buffer.advance(view, 3)           # samples 0..2 are done with
        >>> buffer.extend(torch.tensor([[[5.0, 6.0]]])).tolist()
        [[[3.0, 4.0, 5.0, 6.0]]]
        >>> buffer.held
        2
    """

    data: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("data", torch.empty(0), persistent=False)
        self.start = 0
        self.held = 0
        self.skip = 0
        self.extended_in_place = False

    def extend(self, x: Tensor) -> Tensor:
        """Returns the held samples followed by ``x`` (``[B, C, held + T]``).

        Samples that an earlier :meth:`advance` skipped past are dropped from the front of
        ``x`` first.
        """
        if self.skip > 0:
            dropped = min(self.skip, x.size(-1))
            x = x[..., dropped:]
            self.skip -= dropped
        if self.held == 0:
            self.extended_in_place = False
            return x
        length = x.size(-1)
        self._reserve(x, self.held + length)
        end = self.start + self.held
        self.data[..., end : end + length].copy_(x)
        self.extended_in_place = True
        return self.data[..., self.start : end + length]

    def advance(self, view: Tensor, consumed: int) -> None:
        """Drops the first ``consumed`` samples of ``view`` and holds the rest.

        Args:
            view: the tensor the last :meth:`extend` returned.
            consumed: samples no longer needed; past the end of ``view`` it skips that many
                samples of the blocks still to come.
        """
        length = view.size(-1)
        if consumed >= length:
            self.skip += consumed - length
            self.held = 0
            self.start = 0
        elif self.extended_in_place:
            self.start += consumed
            self.held = length - consumed
        else:
            kept = length - consumed
            self.start = 0
            self.held = 0
            self._reserve(view, kept)
            self.data[..., :kept].copy_(view[..., consumed:])
            self.held = kept
        self.extended_in_place = False

    def held_samples(self) -> Tensor:
        """A copy of the held samples (``[B, C, held]``), e.g. to pad the end of a stream."""
        return self.data[..., self.start : self.start + self.held].clone()

    @torch.jit.export
    def clear(self) -> None:
        """Forgets everything held and pending; keeps the storage for the next stream."""
        self.start = 0
        self.held = 0
        self.skip = 0
        self.extended_in_place = False

    def _reserve(self, like: Tensor, needed: int) -> None:
        """Makes room for ``needed`` samples from ``start`` on, moving or reallocating."""
        data = self.data
        if (
            data.dim() != 3
            or data.size(0) != like.size(0)
            or data.size(1) != like.size(1)
            or data.dtype != like.dtype
            or data.device != like.device
        ):
            fresh = torch.empty(
                like.size(0),
                like.size(1),
                max(2 * needed, 16),
                dtype=like.dtype,
                device=like.device,
            )
            if self.held > 0 and data.dim() == 3:
                fresh[..., : self.held].copy_(data[..., self.start : self.start + self.held])
            self.data = fresh
            self.start = 0
            return
        capacity = data.size(-1)
        if self.start + needed <= capacity:
            return
        if needed <= capacity - self.held and self.held <= self.start:
            # room at the front, and the move does not overlap itself
            data[..., : self.held].copy_(data[..., self.start : self.start + self.held])
            self.start = 0
            return
        fresh = torch.empty(
            like.size(0), like.size(1), 2 * needed, dtype=like.dtype, device=like.device
        )
        if self.held > 0:
            fresh[..., : self.held].copy_(data[..., self.start : self.start + self.held])
        self.data = fresh
        self.start = 0

    def extra_repr(self) -> str:
        return f"held={self.held}, capacity={self.data.size(-1) if self.data.dim() == 3 else 0}"

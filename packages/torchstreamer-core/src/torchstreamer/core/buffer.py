"""A time-axis buffer for stream state, in one preallocated tensor."""

from typing import Any, ClassVar, Final, Optional

import torch
from torch import Tensor

from ._state import StateModule, state_tensor

__all__ = ["TimeBuffer"]


class TimeBuffer(StateModule):
    """The unconsumed tail of a ``[B, C, T]`` stream, held in one reusable tensor.

    A stream calls :meth:`extend` with each new block and gets back the held samples followed by
    the block as one tensor; it computes what it can, then calls :meth:`advance` to say how many
    leading samples it no longer needs. The rest stays held for the next block.

    The storage is allocated once and reused: held samples are never moved on a block unless
    the free space behind them runs out, and when nothing is held the block is returned as it
    is, without a copy. So a layer whose windows do not overlap (stride at least the kernel)
    copies nothing, and an overlapping one copies only the block and, now and then, its tail.
    Memory stays bounded by the largest block plus what the layer holds back.

    From :data:`JOIN_FROM` samples on (held plus new), the held samples and the block are
    joined into a new, contiguous tensor instead, and only the tail that stays is copied into
    the storage: a long view of the storage is strided, and convolution and pooling kernels
    copy a strided input into a contiguous one before they start, a second full copy.

    At small blocks, making a view of the storage costs more than copying a block into it, so
    the views of short spans (:data:`VIEW_CACHE` of them at most) are made once per storage
    and reused: in the steady state of a stream of equal blocks, a block costs one copy.

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
    # the reused views (see _span) stay out of TorchScript, which makes views as it goes
    __jit_ignored_attributes__: ClassVar[list[str]] = ["_views"]

    # the most views of the storage kept for reuse, and the longest span kept
    VIEW_CACHE = 64
    VIEW_SPAN = 256
    # from this many samples on, extend() joins the held samples and the block in a new tensor
    JOIN_FROM: Final[int] = 256

    def __init__(self) -> None:
        super().__init__()
        # a plain attribute rather than a registered buffer: it is read on every block, and
        # nn.Module's attribute lookup for buffers costs more than the rest of the bookkeeping;
        # _apply below keeps .to(), .cuda() and .half() moving it like a buffer
        self.data = torch.empty(0)
        self.start = 0
        self.held = 0
        self.skip = 0
        self.matched = False
        # whether the last extend() returned a new tensor rather than a view of the storage
        self.joined = False

    def extend(self, x: Tensor) -> Tensor:
        """Returns the held samples followed by ``x`` (``[B, C, held + T]``).

        Samples that an earlier :meth:`advance` skipped past are dropped from the front of
        ``x`` first.
        """
        if self.skip > 0:
            dropped = min(self.skip, x.size(-1))
            x = x[..., dropped:]
            self.skip -= dropped
        held = self.held
        if held == 0:
            return x
        length = x.size(-1)
        data = self.data
        if held + length >= self.JOIN_FROM and data.size(0) * data.size(1) > 1:
            # a long view of the storage is strided (the storage is longer), and most kernels
            # copy a strided input into a contiguous one first: a new tensor costs one copy
            self.joined = True
            return torch.cat([data.narrow(-1, self.start, held), x], -1)
        if self.start + held + length > data.size(-1):
            self._make_room(x, held + length)
        start = self.start
        if torch.jit.is_scripting():
            data = self._writable()
            data.narrow(-1, start + held, length).copy_(x)
            return data.narrow(-1, start, held + length)
        write, read = self._spans(start, held, length)
        write.copy_(x)
        return read

    def append(self, x: Tensor) -> None:
        """Holds ``x`` after the held samples: ``advance(extend(x), 0)``, with less to do.

        For a block that completes nothing, so is only held: in the steady state of short
        blocks, one copy into a reused view of the storage.
        """
        held = self.held
        length = x.size(-1)
        # the start of free space behind the held samples (0 when none are held)
        start = self.start + held if held > 0 else 0
        if (
            self.skip > 0
            or not self.matched
            or start + length > self.data.size(-1)
            or held + length >= self.JOIN_FROM
            or torch.jit.is_scripting()
        ):
            self.advance(self.extend(x), 0)
            return
        self._span(start, length).copy_(x)
        if held == 0 and self.start != 0:
            self.start = 0
        self.held = held + length

    def advance(self, view: Tensor, consumed: int) -> None:
        """Drops the first ``consumed`` samples of ``view`` and holds the rest.

        Args:
            view: the tensor the last :meth:`extend` returned.
            consumed: samples no longer needed; past the end of ``view`` it skips that many
                samples of the blocks still to come.
        """
        length = view.size(-1)
        joined = self.joined
        if joined:
            self.joined = False
        if consumed >= length:
            if consumed > length:
                self.skip += consumed - length
            if self.held > 0:
                self.held = 0
                self.start = 0
        elif self.held > 0 and not joined:
            # extend() wrote the block behind the held samples: only the bounds move
            self.start += consumed
            self.held = length - consumed
        else:
            # the view is the caller's block (or a joined copy): copy what stays, never keep a
            # reference to it
            kept = length - consumed
            data = self.data
            if kept > data.size(-1) or not self.matched:
                data = self._match(view, kept)
            source = view if consumed == 0 else view.narrow(-1, consumed, kept)
            if torch.jit.is_scripting():
                data = self._writable()
                data.narrow(-1, 0, kept).copy_(source)
            else:
                self._span(0, kept).copy_(source)
            self.start = 0
            self.held = kept

    def narrow(self, view: Tensor, offset: int, length: int) -> Tensor:
        """``view.narrow(-1, offset, length)`` for the tensor the last :meth:`extend` returned.

        The same samples, valid as long as ``view``; where ``view`` lies in the storage, the
        views of short spans are made once and reused (see the class notes).
        """
        if offset == 0 and length == view.size(-1):
            return view
        if self.held == 0 or self.joined or torch.jit.is_scripting():
            # the view is the caller's block or a joined copy, or scripted code that cannot
            # reuse views
            return view.narrow(-1, offset, length)
        return self._span(self.start + offset, length)

    @torch.jit.unused
    def _span(self, start: int, length: int) -> Tensor:
        """``data.narrow(-1, start, length)``, made once per storage for short spans."""
        data = self.data
        if torch.compiler.is_compiling():
            return data.narrow(-1, start, length)
        cache: Optional[tuple[Tensor, dict[tuple[int, ...], Any]]]
        cache = self.__dict__.get("_views")
        if cache is None or cache[0] is not data:
            cache = (data, {})
            self.__dict__["_views"] = cache
        views = cache[1]
        key = (start, length)
        view = views.get(key)
        if view is None:
            view = data.narrow(-1, start, length)
            if length <= self.VIEW_SPAN:
                if len(views) >= self.VIEW_CACHE:
                    views.clear()
                views[key] = view
        return view

    @torch.jit.unused
    def _spans(self, start: int, held: int, length: int) -> tuple[Tensor, Tensor]:
        """Where :meth:`extend` writes a block of ``length`` and what it returns, as one pair.

        Both are :meth:`_span` views; in the steady state of equal blocks one lookup finds both.
        """
        data = self.data
        cache: Optional[tuple[Tensor, dict[tuple[int, ...], Any]]] = self.__dict__.get("_views")
        if cache is None or cache[0] is not data or torch.compiler.is_compiling():
            return self._span(start + held, length), self._span(start, held + length)
        key = (start, held, length)
        pair: Optional[tuple[Tensor, Tensor]] = cache[1].get(key)
        if pair is None:
            pair = (self._span(start + held, length), self._span(start, held + length))
            if held + length <= self.VIEW_SPAN:
                cache[1][key] = pair
        return pair

    def __getstate__(self) -> dict[str, Any]:
        # the views are remade from the storage: a copy must not share them
        state = super().__getstate__()  # type: ignore[no-untyped-call]
        state = dict(state)
        state.pop("_views", None)
        return state

    def held_samples(self) -> Tensor:
        """A copy of the held samples (``[B, C, held]``), e.g. to pad the end of a stream."""
        return self.data.narrow(-1, self.start, self.held).clone()

    @torch.jit.export
    def clear(self) -> None:
        """Forgets everything held and pending; keeps the storage for the next stream."""
        self.start = 0
        self.held = 0
        self.skip = 0
        self.matched = False
        self.joined = False

    def _writable(self) -> Tensor:
        """The storage, as a tensor that this block may update in place (TorchScript only).

        Eager code allocates outside inference mode (see :func:`state_tensor`); scripted code
        cannot, so storage it made in inference mode is copied once it is used outside.
        """
        data = self.data
        # a fresh tensor is an inference tensor exactly when inference mode is on (made from
        # the data: TorchScript would make torch.empty(0) a constant)
        if data.is_inference() and not data.new_empty(0).is_inference():
            data = data.clone()
            self.data = data
        return data

    def _make_room(self, like: Tensor, needed: int) -> None:
        """Makes room for ``needed`` samples from ``start`` on, by moving or reallocating.

        Only called while samples are held, so the storage already matches the stream's batch
        size, channels, dtype and device.
        """
        data = self._writable() if torch.jit.is_scripting() else self.data
        held = self.held
        if needed <= data.size(-1) and held <= self.start:
            # room at the front, and the move does not overlap itself
            data.narrow(-1, 0, held).copy_(data.narrow(-1, self.start, held))
        else:
            fresh = self._allocate(like, needed)
            fresh.narrow(-1, 0, held).copy_(data.narrow(-1, self.start, held))
        self.start = 0

    def _match(self, like: Tensor, needed: int) -> Tensor:
        """Storage for ``needed`` samples shaped like ``like``, checked once per stream.

        The first samples held since :meth:`clear` may come with a new batch size, dtype or
        device; within a stream these never change, so later calls only check the capacity.
        """
        data = self.data
        if (
            data.dim() != 3
            or data.size(0) != like.size(0)
            or data.size(1) != like.size(1)
            or data.dtype != like.dtype
            or data.device != like.device
            or needed > data.size(-1)
        ):
            data = self._allocate(like, needed)
        self.matched = True
        return data

    def _allocate(self, like: Tensor, needed: int) -> Tensor:
        # twice the need, so that a stream of equal blocks moves its tail only now and then
        fresh = state_tensor([like.size(0), like.size(1), max(2 * needed, 16)], like)
        self.data = fresh
        return fresh

    @torch.jit.unused
    def _apply(self, fn: Any, recurse: bool = True) -> "TimeBuffer":
        self.__dict__.pop("_views", None)
        self.data = fn(self.data)
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        return self

    def extra_repr(self) -> str:
        return f"held={self.held}, capacity={self.data.size(-1) if self.data.dim() == 3 else 0}"

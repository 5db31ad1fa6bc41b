"""Lining up paths fed the same input: the machinery of residual, branch and graph streams.

Several paths (streams) see the same input; a combining step (a sum, a concatenation, any
element-wise operation) needs the outputs of every path at one output index. Paths emit at
their own pace: a centred convolution lags its input, the identity does not. :class:`PathAligner`
holds the outputs of the paths that are ahead, in time buffers, and hands out the outputs that
every path has, as soon as the slowest path has them.

Which outputs belong together is the offline module's business. Where the module crops the
longer paths (``Residual1d``, ``Parallel1d``, ``Concat1d`` crop symmetrically), path ``i``
contributes its output ``n + offset[i]`` to the combined output ``n``; :func:`crop_offsets` finds
those offsets by streaming zeros through the paths, so that they hold for any stream, whatever the
layers inside. In a traced graph the offsets are 0: an element-wise operation on tensors of
different lengths fails offline unless the code crops explicitly, and an explicit crop is a node
of its own.
"""

from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import BaseStream, NotStreamableError, StreamError, TimeBuffer, Timing

__all__ = ["PathAligner", "aligned_timing", "channel_hint", "crop_offsets"]


class PathAligner(nn.Module):
    """Holds the outputs of several paths until every path has reached the same output index.

    Path ``i`` contributes its output ``n + offsets[i]``; the first ``offsets[i]`` outputs of a
    path are dropped at the start of each stream. Each call of :meth:`align` takes what the
    paths emitted on one block and returns, for every path, a piece of the same length: the
    outputs that all paths now have (the most the slowest path allows). The rest waits in the
    path's :class:`~torchstreamer.core.TimeBuffer`.

    The pieces may be views of the aligner's buffers: they are valid until the next call of
    :meth:`align`, so combine them into a new tensor at once and never return a piece itself.

    Args:
        paths: the number of paths.
        offsets: the leading outputs of each path that no combined output uses.
            (Default: none)
        strict: if given, the paths must end at the same output, as operations on tensors of
            one length require; a mismatch raises a :class:`StreamError` that starts with this
            text. Otherwise the longer paths' last outputs are dropped, as cropping does.
            (Default: ``""``)
    """

    offsets: list[int]
    if TYPE_CHECKING:  # what the ModuleList holds, for type checkers; TorchScript sees the list
        queues: list[TimeBuffer]

    def __init__(
        self, paths: int, offsets: Optional[list[int]] = None, *, strict: str = ""
    ) -> None:
        super().__init__()
        # not "buffers": nn.Module has a method of that name
        self.queues = nn.ModuleList([TimeBuffer() for _ in range(paths)])  # type: ignore[assignment]
        self.offsets = [0] * paths if offsets is None else list(offsets)
        self.strict = strict
        self.restart()

    def set_offsets(self, offsets: list[int]) -> None:
        """Sets the offsets and starts a new stream."""
        self.offsets = list(offsets)
        self.restart()

    @torch.jit.export
    def restart(self) -> None:
        """Forgets everything held; the next block starts a new stream."""
        nothing = torch.empty(0)
        for k, queue in enumerate(self.queues):
            queue.clear()
            # advancing past the end skips that many outputs still to come
            queue.advance(nothing, self.offsets[k])

    def align(self, outputs: list[Optional[Tensor]], final: bool) -> Optional[list[Tensor]]:
        """Takes one block's outputs of every path; returns the pieces all paths now have.

        Args:
            outputs: what each path emitted on this block, ``None`` for nothing.
            final: whether the paths have been flushed; the caller restarts the aligner after
                combining the pieces.

        Returns:
            one ``[B, C_i, n]`` piece per path, ``n`` the same for all, or ``None`` when some
            path has nothing yet. ``n > 0`` except on ``final``, where zero-length pieces
            carry the paths' shapes.

        Raises:
            StreamError: on ``final``, if ``strict`` and the paths end at different lengths.
        """
        views: list[Optional[Tensor]] = []
        ready = -1  # the shortest view so far
        for k, queue in enumerate(self.queues):
            y = outputs[k]
            view: Optional[Tensor] = None
            if queue.held > 0:
                # an empty block of the held shape returns the held samples as one view
                view = queue.extend(queue.data[..., :0] if y is None else _detached(y))
            elif y is not None:
                # a path that is not ahead passes its block on without touching the buffer
                view = queue.extend(y) if queue.skip > 0 else y
            views.append(view)
            if view is None:
                ready = 0
            elif ready < 0:
                ready = view.size(-1)
            else:
                ready = min(ready, view.size(-1))
        if final and self.strict:
            self._check_lengths(views)
        if ready == 0:
            if final:
                return _empty_pieces(views)
            for k, waiting in enumerate(self.queues):
                held = views[k]
                if held is not None:
                    waiting.advance(_detached(held), 0)
            return None
        pieces: list[Tensor] = []
        for k, done in enumerate(self.queues):
            piece = views[k]
            assert piece is not None
            length = piece.size(-1)
            if length > ready or done.held > 0:
                done.advance(_detached(piece), ready)
                if length > ready:
                    piece = piece.narrow(-1, 0, ready)
            pieces.append(piece)
        return pieces

    def _check_lengths(self, views: list[Optional[Tensor]]) -> None:
        lengths = [0 if view is None else view.size(-1) for view in views]
        if min(lengths) != max(lengths):
            raise StreamError(
                self.strict
                + ": its inputs end at different lengths (the last "
                + ", ".join([str(n) for n in lengths])
                + " samples remained); the module fails offline for this input length"
            )

    def extra_repr(self) -> str:
        return f"offsets={self.offsets}"


def _detached(x: Tensor) -> Tensor:
    """``x`` without autograd history, so that what the buffers keep never holds a graph.

    Held samples would otherwise chain every block's graph to the next: memory without bound
    while gradients are enabled, and streams that ``copy.deepcopy`` cannot copy.
    """
    return x.detach() if x.requires_grad else x


def _empty_pieces(views: list[Optional[Tensor]]) -> Optional[list[Tensor]]:
    """Zero-length pieces of every path's shape, so that what follows can be flushed."""
    pieces: list[Tensor] = []
    for view in views:
        if view is None:
            return None
        pieces.append(view[..., :0])
    return pieces


def aligned_timing(timings: list[Timing], offsets: list[int]) -> Timing:
    """The timing of paths combined by a :class:`PathAligner` with these offsets.

    Raises:
        ValueError: if the paths run at different rates.
    """
    return Timing.parallel([_output_shifted(t, o) for t, o in zip(timings, offsets, strict=True)])


def _output_shifted(timing: Timing, offset: int) -> Timing:
    if offset == 0:
        return timing
    first, last = timing.first, timing.last
    return Timing(
        timing.period_in,
        timing.period_out,
        lambda j: first(j + offset),
        lambda j: last(j + offset),
    )


def channel_hint(streams: list[BaseStream]) -> int:
    """A channel count the streams probably accept: the first one a stream inside them declares.

    Streams whose first layers take any number of channels (activations) still need the right
    count further in; the first declared count is the one a probe should try.
    """
    for stream in streams:
        for module in stream.modules():
            if isinstance(module, BaseStream) and module.in_channels >= 0:
                return module.in_channels
    return 1


def crop_offsets(
    paths: list[Optional[BaseStream]],
    like: Tensor,
    *,
    names: list[str],
    shortest: Optional[int] = None,
) -> list[int]:
    """The offsets that symmetric cropping to the shortest path gives, found by streaming zeros.

    Each path is streamed over zeros of several lengths (a whole period of the paths' strides
    and one more), each in one final call; path ``i`` giving ``T_i`` outputs is cropped by
    ``(T_i - min T) // 2`` on the left, as the offline containers do. That crop must not depend
    on the length, or no stream could know it before the end.

    Args:
        paths: the path streams, ``None`` for the identity (the input itself).
        like: a ``[1, C, 0]`` tensor of the channels, dtype and device to probe with.
        names: the paths' names, for messages.
        shortest: the path that must be the shortest (the inner network of a residual, which
            may shorten the signal but never lengthen it). (Default: any)

    Returns:
        one offset per path.

    Raises:
        NotStreamableError: if the crop depends on the length, or ``shortest`` is not the
            shortest path.
    """
    timings = _known_timings(paths)
    period = 1
    reach = 64
    if timings is not None:
        period = Timing.parallel(timings).period_in if _one_rate(timings) else 1
        reach = max(t.receptive_field for t in timings)
    else:
        # without timings, a few lengths still catch the strides that real networks use
        period = 8
    start = max(16, 2 * reach + 2 * period)
    table: list[list[int]] = []
    with torch.no_grad():
        for length in range(start, start + period + 1):
            zeros = like.new_zeros(1, like.size(1), length)
            table.append([length if p is None else _output_count(p, zeros) for p in paths])
    offsets: Optional[list[int]] = None
    for row, length in zip(table, range(start, start + period + 1), strict=True):
        if shortest is not None and min(row) < row[shortest]:
            longer = [names[i] for i, n in enumerate(row) if n < row[shortest]]
            raise NotStreamableError(
                f"{names[shortest]} gives {row[shortest]} samples for {length} inputs, more than "
                f"{', '.join(longer)}: the residual connection would fail offline"
            )
        least = min(row)
        current = [(n - least) // 2 for n in row]
        if offsets is None:
            offsets = current
        elif current != offsets:
            shown = "; ".join(
                f"{length + i} inputs: " + ", ".join(f"{n} ({names[k]})" for k, n in enumerate(r))
                for i, r in enumerate(table)
            )
            raise NotStreamableError(
                "the branches differ in length by an amount that depends on the input length, "
                f"so their alignment is only known at the end of the signal ({shown})"
            )
    assert offsets is not None
    return offsets


def _output_count(stream: BaseStream, zeros: Tensor) -> int:
    y = stream.step(zeros, True)
    return 0 if y is None else int(y.size(-1))


def _known_timings(paths: list[Optional[BaseStream]]) -> Optional[list[Timing]]:
    timings = []
    for path in paths:
        if path is None:
            timings.append(Timing.identity())
            continue
        try:
            timings.append(path.timing())
        except NotImplementedError:
            return None
    return timings


def _one_rate(timings: list[Timing]) -> bool:
    return len({t.rate for t in timings}) == 1

"""Paths fed the same input, aligned and combined: the base of residual and branch streams."""

from functools import partial
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Edges,
    NotStreamableError,
    StreamError,
    Timing,
    check_edges,
    create_stream,
)

from ._align import PathAligner, aligned_timing, channel_hint, crop_offsets
from ._located import Child, LocatedStream, build_child

__all__ = ["Paths1dStream", "check_forward", "crop_to"]


def check_forward(module: nn.Module, container: type[nn.Module], stream: str) -> None:
    """Refuses a subclass of ``container`` whose own ``forward`` computes something else.

    Raises:
        NotStreamableError: naming the stream and the module.
    """
    if type(module).forward is not container.forward:
        raise NotStreamableError(
            f"{stream}: {type(module).__name__} overrides forward(), so it does not compute "
            f"what {container.__name__} does; torchstreamer.create_stream streams it from its "
            "traced forward() instead"
        )


def crop_to(x: Tensor, length: int) -> Tensor:
    """``x`` cropped to ``length`` samples, symmetrically; the left side loses the floor of half.

    This is how ``Residual1d``, ``Parallel1d`` and ``Concat1d`` line up paths of different
    lengths offline, and what their streams reproduce.
    """
    extra = x.shape[-1] - length
    if extra == 0:
        return x
    return x[..., extra // 2 : extra // 2 + length]


class Paths1dStream(LocatedStream):
    """Streams several paths fed the same input and combines their aligned outputs.

    Path ``i`` contributes its output ``n + offset_i`` to output ``n``, where ``offset_i`` is
    the symmetric crop that lines the paths up offline (:func:`crop_to`); the offsets are
    measured when the stream is built by streaming zeros through the paths, or on the first
    block when the channel count that takes cannot be guessed. Outputs of faster paths wait in a
    :class:`~torchstreamer.nets._align.PathAligner` until the slowest path catches up, so each
    combined output is emitted as soon as every path has it.

    Args:
        branches: ``(name, module)`` of each path, the name being the module's path in the
            network (for messages), or ``""`` to report a path's errors unlocated.
        edges: passed to every path's stream.
        identity: whether the input itself is one more path, the first (a residual).
        combine: ``"sum"``, ``"mean"`` or ``"cat"`` (along channels).
    """

    if TYPE_CHECKING:  # what the ModuleList holds, for type checkers; TorchScript sees the list
        paths: list[BaseStream]

    def __init__(
        self,
        branches: list[tuple[str, nn.Module]],
        *,
        edges: Edges,
        identity: bool,
        combine: str,
    ) -> None:
        super().__init__()
        check_edges(edges)
        paths: list[BaseStream] = []
        names: list[str] = []
        kinds: list[str] = []
        for name, module in branches:
            build = partial(create_stream, module, edges=edges)
            paths.append(build_child(name, module, build) if name else build())
            names.append(name)
            kinds.append(type(module).__name__)
        self.paths = nn.ModuleList(paths)  # type: ignore[assignment]
        self.names = names
        self.kinds = kinds
        self.identity = identity
        self.combine = combine
        self.edges = edges
        self.in_channels = _common_channels(paths, names)
        self.module_hint = paths[0].module_hint if len(paths) == 1 else ""
        count = len(paths) + int(identity)
        self.aligner = PathAligner(count)
        self._check_rates()
        self.pending = False
        like = self._probe_like(paths)
        try:
            self.aligner.set_offsets(self._offsets(like))
        except NotStreamableError:
            raise
        except Exception:
            # the guessed channel count did not fit; the first block tells the right one
            self.pending = True
            self.reset_state()

    def _step(self, x: Tensor, final: bool) -> Optional[Tensor]:
        if self.pending:
            self._probe_now(x)
        outputs: list[Optional[Tensor]] = []
        if self.identity:
            outputs.append(x)
        for path in self.paths:
            outputs.append(path.step(x, final))
        pieces = self.aligner.align(outputs, final)
        if final:
            self.aligner.restart()
        if pieces is None or pieces[0].size(-1) == 0:
            return None
        return self._combine(pieces)

    def _combine(self, pieces: list[Tensor]) -> Tensor:
        if self.combine == "cat":
            return torch.cat(pieces, dim=1)
        y = pieces[0]
        for piece in pieces[1:]:
            y = y + piece
        if self.combine == "mean":
            y = y / len(pieces)
        return y

    def reset_state(self) -> None:
        for path in self.paths:
            path.reset_state()
        self.aligner.restart()

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        if self.pending:
            return 0
        # each path must bring the outputs it contributes beyond what waits in its queue
        need = 1
        queues = list(self.aligner.queues)
        streams: list[Optional[BaseStream]] = list(self.paths)
        if self.identity:
            streams.insert(0, None)
        for stream, queue in zip(streams, queues, strict=True):
            more = outputs + queue.skip - queue.held
            if more > 0:
                inputs = more if stream is None else stream.demand(more)
                if inputs <= 0:
                    return 0
                need = max(need, inputs)
        return need

    @torch.jit.unused
    def timing(self) -> Timing:
        if self.pending:
            raise NotImplementedError(
                f"{self.stream_name} aligns its paths on the first block (the channel count "
                "they take could not be guessed); its timing is known after that"
            )
        timings = [stream.timing() for stream in self.paths]
        if self.identity:
            timings.insert(0, Timing.identity())
        return aligned_timing(timings, self.aligner.offsets)

    @torch.jit.unused
    def _offsets(self, like: Tensor) -> list[int]:
        """The crop of each path, measured by streaming zeros like ``like``."""
        streams: list[Optional[BaseStream]] = list(self.paths)
        names = [name or kind for name, kind in zip(self.names, self.kinds, strict=True)]
        if self.identity:
            streams.insert(0, None)
            names.insert(0, "the input")
        # a residual's inner network may shorten the signal, never lengthen it
        shortest = len(streams) - 1 if self.identity else None
        return crop_offsets(streams, like, names=names, shortest=shortest)

    @torch.jit.unused
    def _probe_now(self, x: Tensor) -> None:
        self.aligner.set_offsets(self._offsets(x[:1, :, :0]))
        self.pending = False

    @torch.jit.unused
    def _probe_like(self, paths: list[BaseStream]) -> Tensor:
        reference = next(self.parameters(), None)
        channels = self.in_channels if self.in_channels >= 0 else channel_hint(paths)
        if reference is None:
            return torch.zeros(1, channels, 0)
        return reference.new_zeros(1, channels, 0)

    @torch.jit.unused
    def _check_rates(self) -> None:
        rates = {}
        for name, kind, path in zip(self.names, self.kinds, self.paths, strict=True):
            try:
                rates[name or kind] = path.timing().rate
            except NotImplementedError:
                continue
        if self.identity and any(rate != 1 for rate in rates.values()):
            shown = ", ".join(f"{name} at rate {rate}" for name, rate in rates.items())
            raise NotStreamableError(
                f"invalid_residual_stride: the inner network changes the sample rate ({shown}); "
                "a residual connection adds its input and output sample by sample, so they "
                "must run at one rate"
            )
        if len(set(rates.values())) > 1:
            shown = ", ".join(f"{name} at rate {rate}" for name, rate in rates.items())
            raise NotStreamableError(
                f"{self.stream_name}: the branches run at different sample rates ({shown}), so "
                "their outputs cannot be combined sample by sample"
            )

    @torch.jit.unused
    def _children(self) -> list[Child]:
        return [
            (path, name, kind)
            for path, name, kind in zip(self.paths, self.names, self.kinds, strict=True)
            if name
        ]


def _common_channels(paths: list[BaseStream], names: list[str]) -> int:
    declared = {
        (p.in_channels, name or type(p).__name__)
        for p, name in zip(paths, names, strict=True)
        if p.in_channels >= 0
    }
    counts = {count for count, _ in declared}
    if len(counts) > 1:
        shown = ", ".join(f"{name} takes {count}" for count, name in sorted(declared))
        raise StreamError(f"the branches expect different input channel counts ({shown})")
    return counts.pop() if counts else -1

"""The stream of ``nn.Sequential``."""

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Optional

import torch
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Edges,
    StreamError,
    TimeBuffer,
    Timing,
    check_edges,
    create_stream,
)
from torchstreamer.layers import ConvTranspose1dStream, WindowStream

from ._channels import keeps_channels, legacy_stream, stateless
from ._lengths import Chain, Received, length_map, shortest_input
from ._located import Child, LocatedStream, build_child
from ._paths import check_forward

__all__ = ["Sequential1dStream"]


class Sequential1dStream(LocatedStream):
    """Streams an ``nn.Sequential`` exactly: one stream per child, each fed the last one's output.

    Each child is streamed through the registry (:func:`torchstreamer.create_stream`), so nested
    ``Sequential`` modules, residual blocks and your own registered handlers all work inside.
    Each block passes through the stages as far as outputs are ready; a stage that has nothing
    yet ends the call (returning ``None``). ``final=True`` reaches every stage, even past stages
    that have nothing more to give, so that each flushes its own tail (the last outputs of a
    transposed convolution after a strided convolution, say).

    An empty ``Sequential`` is the identity, as ``nn.Sequential()`` is offline: each non-empty
    block is returned as it is.

    Args:
        module: the network. Its children's parameters are shared, not copied.
        edges: ``"pad"`` reproduces ``module(x)`` with every layer's padding; ``"valid"``
            ignores padding, as torch-streamer 0.0.2 did. (Default: ``"pad"``)

    Raises:
        NotStreamableError: if a child cannot be streamed; the message starts with the child's
            path in the network, e.g. ``3.net.1 (GroupNorm): ...``.
        StreamError: if ``module`` is not an ``nn.Sequential``.

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in; out as the network's last layer gives.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> net = torch.nn.Sequential(
        ...     torch.nn.Conv1d(1, 8, 5, padding=2), torch.nn.Conv1d(8, 1, 3, padding=1)
        ... ).eval()
        >>> stream = pts.Sequential1dStream(net)
        >>> x = torch.randn(1, 50)
        >>> blocks = [stream(x[:, i : i + 8], final=i + 8 >= 50) for i in range(0, 50, 8)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), net(x))
        >>> stream.lookahead
        Fraction(3, 1)
    """

    # how a stage is flushed on final=True when the stage before it returned nothing: an empty
    # block of its declared channels (>= 0), none (stateless, or a stream that cannot take an
    # empty block), or one of the channels the stage before last emitted
    RESET: Final[int] = -1
    RECORDED: Final[int] = -2

    flush: list[int]
    record: list[bool]
    channels: list[int]
    if TYPE_CHECKING:  # what the ModuleList holds, for type checkers; TorchScript sees the list
        stages: list[BaseStream]

    def __init__(self, module: nn.Sequential, *, edges: Edges = "pad") -> None:
        super().__init__()
        check_edges(edges)
        if not isinstance(module, nn.Sequential):
            raise StreamError(
                f"Sequential1dStream: expected an nn.Sequential, got {type(module).__name__}"
            )
        check_forward(module, nn.Sequential, "Sequential1dStream")
        names: list[str] = []
        kinds: list[str] = []
        stages: list[BaseStream] = []
        for name, child in module.named_children():
            stages.append(build_child(name, child, partial(create_stream, child, edges=edges)))
            names.append(name)
            kinds.append(type(child).__name__)
        self.stages = nn.ModuleList(stages)  # type: ignore[assignment]
        maps = [length_map(stage) for stage in stages]
        # kept out of TorchScript's sight: bound methods are no attribute type it knows
        known = [m for m in maps if m is not None]
        self.__dict__["_lengths"] = Chain(known) if len(known) == len(maps) else None
        self.__dict__["_input_length"] = None
        # the network raises on a shorter signal, so at least this many samples will come
        refuses = [isinstance(stage, (WindowStream, ConvTranspose1dStream)) for stage in stages]
        self.__dict__["_shortest"] = shortest_input(maps, refuses)
        # samples received in the stream under way, counted only for stages that ask
        self.received = 0
        self.counting = False
        # the stages that know the length of their input (see _step_following), kept out of
        # TorchScript's sight like the rest of that mechanism
        followers: list[int] = []
        for k, stage in enumerate(stages):
            follow = getattr(stage, "follow", None)
            if 0 < k <= len(known) and follow is not None and None not in maps[:k]:
                # a time slice after a padded layer holds back only what may still be dropped
                follow(Received(self, Chain(known[:k])))
                self.counting = True
                followers.append(k)
        self.__dict__["_followers"] = followers
        self.names = names
        self.kinds = kinds
        self.edges = edges
        first = _first_declaring(stages)
        if first is not None:
            self.in_channels = first.in_channels
            self.module_hint = first.module_hint
        self.flush = [_flush_rule(stage) for stage in stages]
        # a stage's output channels are recorded only where the next one may need them
        self.record = [
            k + 1 < len(stages) and self.flush[k + 1] == self.RECORDED for k in range(len(stages))
        ]
        self.channels = [-1] * len(stages)
        self.recording = any(self.record)
        self.identity_only = not stages
        # blocks too short for the network to emit anything wait here (see _step_lazy)
        self.waiting = TimeBuffer()
        self.period = _input_period(stages)
        self.lazy = self.period > 1 and all(stage.demand(1) > 0 for stage in stages)
        self.threshold = 0

    def _step(self, x: Tensor, final: bool) -> Optional[Tensor]:
        if not torch.jit.is_scripting() and self.lazy:
            return self._step_lazy(x, final)
        return self._push(x, final)

    @torch.jit.unused
    def _step_lazy(self, x: Tensor, final: bool) -> Optional[Tensor]:
        """Holds blocks too short to emit anything, then runs the stages once on all of them.

        A network that downsamples emits nothing on most short blocks, yet each stage would
        run on each block: the first layers on every sample. The stages' :meth:`demand`
        says how many samples the next output needs at least; until that many have arrived,
        blocks wait here, and the stages then see them as one block. Same outputs, same
        timing, a fraction of the calls.
        """
        waiting = self.waiting
        size = x.size(-1)
        if not final and (waiting.held > 0 or size < self.period):
            threshold = self.threshold
            if threshold == 0:
                threshold = self.demand(1)
                self.threshold = threshold
            if waiting.held + size < threshold:
                if size > 0:
                    waiting.advance(waiting.extend(x), 0)
                return None
        self.threshold = 0
        if waiting.held == 0:
            return self._push(x, final)
        chunk = waiting.extend(x)
        y = self._push(chunk, final)
        waiting.clear()
        if y is not None and y.untyped_storage().data_ptr() == chunk.untyped_storage().data_ptr():
            # stages that pass their input on (identities) must not hand out the storage
            y = y.clone()
        return y

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        # what the last stage needs, from the one before it, and so on to the first
        need = outputs
        for k in range(len(self.stages) - 1, -1, -1):
            need = self.stages[k].demand(need)
            if need <= 0:
                return 0
        return max(need - self.waiting.held, 1)

    def _push(self, x: Tensor, final: bool) -> Optional[Tensor]:
        if self.counting:
            self.received += x.size(-1)
        if final:
            return self._finish(x)
        if self.counting and not torch.jit.is_scripting():
            return self._step_following(x)
        if self.recording:
            return self._step_recording(x)
        # the hot loop: children never return empty tensors, so only an empty network (the
        # identity) can pass an empty block on
        y = x
        for stage in self.stages:
            out = stage.step(y, False)
            if out is None:
                return None
            y = out
        if self.identity_only and y.size(-1) == 0:
            return None
        return y

    def _step_recording(self, x: Tensor) -> Optional[Tensor]:
        """The hot loop, recording the channels that a final flush may need."""
        y = x
        for k, stage in enumerate(self.stages):
            out = stage.step(y, False)
            if out is None:
                return None
            if self.record[k]:
                self.channels[k] = out.size(1)
            y = out
        return y

    @torch.jit.unused
    def _step_following(self, x: Tensor) -> Optional[Tensor]:
        """The loop for a network with stages that know the length of their input.

        Such a stage (a transposed convolution with ``padding``, a time slice) may hold an
        output that waits only for the signal to go on past its last input. The stages before
        it can tell that it does before they emit anything (a padded convolution, a pool with
        ``ceil_mode``, owes outputs for the samples it has), so when a stage emits nothing,
        the next such stage is still called, with an empty block, and what it emits goes on
        through the stages after it.
        """
        followers: list[int] = self.__dict__["_followers"]
        # a plain list: indexing an nn.ModuleList costs more than a layer's bookkeeping
        modules: Any = self.stages
        stages: list[BaseStream] = list(modules._modules.values())
        record = self.record
        y = x
        k = 0
        count = len(stages)
        while k < count:
            out = stages[k].step(y, False)
            if out is None:
                later = [j for j in followers if j > k]
                if not later or stages[later[0]].in_channels < 0:
                    return None
                k = later[0]
                nudged = stages[k]
                out = nudged.step(x.new_empty((x.size(0), nudged.in_channels, 0)), False)
                if out is None:
                    return None
            if record[k]:
                self.channels[k] = out.size(1)
            y = out
            k += 1
        return y

    def _finish(self, x: Tensor) -> Optional[Tensor]:
        y: Optional[Tensor] = x
        for k, stage in enumerate(self.stages):
            if y is None:
                rule = self.flush[k]
                if rule == self.RECORDED:
                    rule = self.channels[k - 1]
                if rule >= 0:
                    y = x.new_empty((x.size(0), rule, 0))
            if y is None:
                stage.reset()
            else:
                y = stage.step(y, True)
        self._reset_own()
        if y is None or y.size(-1) == 0:
            return None
        return y

    def reset_state(self) -> None:
        for stage in self.stages:
            stage.reset_state()
        self._reset_own()

    def _reset_own(self) -> None:
        for k in range(len(self.channels)):
            self.channels[k] = -1
        self.received = 0
        self.waiting.clear()
        self.threshold = 0

    @torch.jit.unused
    def follow(self, input_length: Callable[[], int]) -> None:
        """Gives the stream a way to know how long its input would be if the signal ended now.

        Time slices inside then hold back only what may still be dropped; the network around
        this stream provides it.
        """
        self.__dict__["_input_length"] = input_length

    @torch.jit.unused
    def input_length(self) -> int:
        """How long the input would be if the signal ended now."""
        outer = self.__dict__["_input_length"]
        length = self.received if outer is None else int(outer())
        shortest: int = self.__dict__["_shortest"]
        return max(length, shortest)

    @torch.jit.unused
    def output_length(self, length: int) -> int:
        """The output length for ``length`` input samples.

        Raises:
            NotImplementedError: if a stage does not report its output length.
        """
        chain = self.__dict__["_lengths"]
        if chain is None:
            raise NotImplementedError(f"{self.stream_name}: a stage does not report its length")
        return int(chain(length))

    @torch.jit.unused
    def timing(self) -> Timing:
        return Timing.chain([stage.timing() for stage in self.stages])

    @torch.jit.unused
    def _children(self) -> list[Child]:
        return list(zip(self.stages, self.names, self.kinds, strict=True))

    def extra_repr(self) -> str:
        return "edges='valid'" if self.edges == "valid" else ""


def _input_period(stages: list[BaseStream]) -> int:
    """Input samples per period of the network's output pattern (1 if it is not known)."""
    try:
        return Timing.chain([stage.timing() for stage in stages]).period_in
    except (NotImplementedError, AttributeError, ValueError):
        return 1


def _first_declaring(stages: list[BaseStream]) -> Optional[BaseStream]:
    """The first stage that declares its input channels, past stages that keep them."""
    for stage in stages:
        if stage.in_channels >= 0:
            return stage
        if not keeps_channels(stage):
            return None
    return None


def _flush_rule(stage: BaseStream) -> int:
    if stage.in_channels >= 0:
        return stage.in_channels
    if legacy_stream(stage) or stateless(stage):
        return Sequential1dStream.RESET
    return Sequential1dStream.RECORDED

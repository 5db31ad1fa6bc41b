"""The stream protocol: :class:`BaseStream`."""

from fractions import Fraction
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor, nn

from ._state import StateModule
from .errors import StreamError
from .timing import Timing

__all__ = ["BaseStream"]


class BaseStream(StateModule):
    """Base class of every stream.

    A stream wraps a module and is called block by block: ``stream(x, final=False)`` returns the
    outputs that the blocks so far determine, or ``None`` when there are none yet (never a
    zero-length tensor). For any partition of a signal into blocks, with ``final=True`` on the
    last call, the concatenated outputs equal ``module(signal)``. ``final=True`` flushes
    everything still held back, then resets the stream so the next call starts a new stream.

    Shapes:
        ``x`` is ``[C, T]`` (one stream) or ``[B, C, T]`` (``B`` independent streams advancing
        together); the output has the same layout. ``T`` may be 0. ``B`` is fixed from the first
        block until the stream ends.

    Writing a stream:
        Implement :meth:`step`, which always sees ``[B, C, T]`` blocks that have already been
        checked; implement :meth:`reset_state` if the stream holds state, and :meth:`timing`
        so that ``receptive_field``, ``rate`` and ``lookahead`` work. Set ``in_channels`` when the
        stream knows how many channels it takes. Register it for a module type with
        :func:`torchstreamer.register_streamer`.

        Streams written for torch-streamer 0.0.2, which override ``forward`` instead, keep
        working: inside a network they are called with ``[C, T]`` blocks when ``B == 1``.

    Attributes:
        in_channels: input channels the stream accepts, or -1 when any number will do.
        batch_size: the batch size of the stream under way, or -1 between streams.
        stream_name: the name error messages give the stream (its class name by default).
        module_hint: how error messages show the wrapped module, e.g. ``Conv1d(4, 8, ...)``.
    """

    __jit_unused_properties__: ClassVar[list[str]] = ["receptive_field", "rate", "lookahead"]

    in_channels: int
    batch_size: int
    stream_name: str
    module_hint: str

    def __init__(self) -> None:
        super().__init__()
        if type(self).step is BaseStream.step and type(self).forward is BaseStream.forward:
            raise TypeError(
                f"{type(self).__name__} must implement step() (or forward(), as streams "
                "written for torch-streamer 0.0.2 do)"
            )
        self.in_channels = -1
        self.batch_size = -1
        self.stream_name = type(self).__name__
        self.module_hint = ""

    def forward(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        """Streams one block.

        Args:
            x: the next block, ``[C, T]`` or ``[B, C, T]``; ``T`` may be 0.
            final: whether this is the last block; flushes what is held back, then resets.
                (Default: False)

        Returns:
            the outputs this block completes, in the layout of ``x``, or ``None`` if there are
            none yet.

        Raises:
            StreamError: on a block of the wrong rank, channel count, dtype, device or batch
                size; the stream's state is left as it was.

        Streams compute without autograd (as torch-streamer 0.0.2 did): outputs never require
        gradients, so the state held from block to block never links into a graph.
        """
        rank = x.dim()
        # x[None] and y[0] cost less than unsqueeze(0) and squeeze(0), per call
        xb = x[None] if rank == 2 else x
        self.check_block(xb, rank)
        if torch.is_grad_enabled():
            # inference only, as in torch-streamer 0.0.2: a graph through the held state would
            # grow with every block (entering no_grad costs, so only when needed)
            with torch.no_grad():
                y = self.step(xb, final)
        else:
            y = self.step(xb, final)
        # after step(): a block it raised on has not started a stream; and the counter changes
        # only at the edges of a stream, since assignments cost, even here
        if final:
            if self.batch_size >= 0:
                self.batch_size = -1
        elif self.batch_size < 0:
            self.batch_size = xb.size(0)
        if y is None or rank == 3:
            return y
        return y[0]

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        """Streams one checked ``[B, C, T]`` block; composite streams call this on children.

        The default adapts a stream that overrides ``forward`` (the torch-streamer 0.0.2
        protocol): it is given ``[C, T]`` when ``B == 1`` and the batched block otherwise.
        """
        if x.size(0) == 1:
            y = self.forward(x.squeeze(0), final)
            return None if y is None else y.unsqueeze(0)
        return self.forward(x, final)

    @torch.jit.export
    def reset(self) -> None:
        """Forgets all buffered input without emitting it; the next call starts a new stream."""
        self.batch_size = -1
        self.reset_state()

    def reset_state(self) -> None:
        """Clears the stream's own state (and its children's); called by reset() and final."""

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        """How many more input samples this stream needs, at least, to emit ``outputs`` more.

        A lower bound, for the stream's present state and blocks without ``final``: after fewer
        further samples than this, however they are split into blocks, the stream has emitted
        fewer than ``outputs`` more outputs. Composite streams use it to skip work that cannot
        emit anything yet: a network whose last layer needs 8 more samples holds one-sample
        blocks until 8 have arrived, then runs each layer once on all of them, instead of
        running every layer on every sample. The outputs and their timing are the same.

        The default, 0, means "not known", and turns that skipping off around the stream.
        A stream that returns a bound must stay at or below the truth, or its outputs would
        come later than the input determines them; ``torchstreamer.testing`` checks that.

        Args:
            outputs: how many more outputs (at least 1).

        Returns:
            at least 1, or 0 if the stream does not know.
        """
        return 0

    def check_block(self, x: Tensor, rank: int) -> None:
        """Rejects a ``[B, C, T]`` block this stream cannot take, before any state changes.

        Args:
            x: the block, already given a batch axis.
            rank: the rank of the block as the caller passed it.

        Raises:
            StreamError: naming this stream, what it expected and what it got.
        """
        if rank != 2 and rank != 3:
            raise StreamError(
                self.stream_name
                + ": expected a [C, T] or [B, C, T] block, got a tensor of shape "
                + str(list(x.shape))
            )
        if not x.is_floating_point():
            raise StreamError(
                self.stream_name + ": expected a floating-point block, got " + _dtype_name(x.dtype)
            )
        if self.in_channels >= 0 and x.size(1) != self.in_channels:
            raise StreamError(
                self.stream_name
                + ": expected "
                + str(self.in_channels)
                + " input channels"
                + self._module_hint()
                + ", got "
                + str(x.size(1))
            )
        if self.batch_size >= 0 and x.size(0) != self.batch_size:
            raise StreamError(
                self.stream_name
                + ": the batch size is fixed at "
                + str(self.batch_size)
                + " until the stream ends (final=True or reset()), got a block of batch size "
                + str(x.size(0))
            )
        if not torch.jit.is_scripting():
            self._check_like_parameters(x)

    @torch.jit.unused
    def _check_like_parameters(self, x: Tensor) -> None:
        # where the first parameter is registered: its owner's table and its name, looked up on
        # every block so that a parameter assigned anew is the one compared with
        place = self.__dict__.get("_reference_place", False)
        reference = None
        if place:
            reference = place[0].get(place[1])
        if reference is None:
            if place is None:
                return
            place = _first_parameter_place(self)
            self.__dict__["_reference_place"] = place
            if place is None:
                return
            reference = place[0][place[1]]
        if x.dtype is not reference.dtype:
            raise StreamError(
                f"{self.stream_name}: expected a {reference.dtype} block, the dtype of the "
                f"module's parameters, got {x.dtype}"
            )
        if x.device != reference.device:
            raise StreamError(
                f"{self.stream_name}: expected a block on {reference.device}, where the "
                f"module's parameters are, got one on {x.device}"
            )

    def _module_hint(self) -> str:
        return " (" + self.module_hint + ")" if self.module_hint else ""

    @torch.jit.unused
    def timing(self) -> Timing:
        """Which inputs each output depends on; see :class:`torchstreamer.core.Timing`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not report its timing; implement timing() to get "
            "receptive_field, rate and lookahead"
        )

    @property
    def receptive_field(self) -> int:
        """Input samples that one output depends on (the most, over all outputs).

        Raises:
            AttributeError: if the stream does not implement :meth:`timing`.
        """
        return self._known_timing().receptive_field

    @property
    def rate(self) -> Fraction:
        """Output samples per input sample, e.g. ``Fraction(1, 2)`` after a stride-2 layer.

        Raises:
            AttributeError: if the stream does not implement :meth:`timing`.
        """
        return self._known_timing().rate

    @property
    def lookahead(self) -> Fraction:
        """Input samples past an output's own time that it depends on: the stream's latency.

        See :attr:`torchstreamer.core.Timing.lookahead`.

        Raises:
            AttributeError: if the stream does not implement :meth:`timing`.
        """
        return self._known_timing().lookahead

    @torch.jit.unused
    def _known_timing(self) -> Timing:
        # an AttributeError keeps hasattr() and TorchScript's attribute scan working
        try:
            return self.timing()
        except NotImplementedError as error:
            raise AttributeError(str(error)) from None


def _first_parameter_place(module: nn.Module) -> Optional[tuple[dict[str, Any], str]]:
    """The parameter table and name of ``module``'s first parameter, or None if it has none."""
    for owner in module.modules():
        for name, parameter in owner._parameters.items():
            if parameter is not None:
                return owner._parameters, name
    return None


def _dtype_name(dtype: torch.dtype) -> str:
    """``str(dtype)``, also under TorchScript, where a dtype is only a number."""
    if not torch.jit.is_scripting():
        return str(dtype)
    names = [
        (torch.bool, "torch.bool"),
        (torch.uint8, "torch.uint8"),
        (torch.int8, "torch.int8"),
        (torch.int16, "torch.int16"),
        (torch.int32, "torch.int32"),
        (torch.int64, "torch.int64"),
        (torch.complex64, "torch.complex64"),
        (torch.complex128, "torch.complex128"),
    ]
    for known, name in names:
        if dtype == known:
            return name
    return "a dtype that is not floating-point"

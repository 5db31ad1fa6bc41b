"""Streams of any module whose ``forward`` ``torch.fx`` can trace."""

from __future__ import annotations

import inspect
import linecache
import operator
import os
import sys
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any, NoReturn, Optional

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Edges,
    NotStreamableError,
    StreamError,
    Timing,
    check_edges,
    create_stream,
    handled_type,
)

from ._align import PathAligner
from ._graph_ops import (
    PER_CHANNEL_OPERANDS,
    channel_rule,
    inplace_twin,
    is_full,
    is_pointwise,
    rule_dims,
    split_time_index,
    time_extent,
)
from ._graph_run import (
    Attribute,
    Call,
    Env,
    JoinOp,
    MapOp,
    Method,
    Op,
    Piece,
    Slot,
    StaticOp,
    StreamOp,
)
from ._lengths import Chain, Received, length_map
from ._located import Child, build_child, locate
from ._slice import TimeSlice1dStream

__all__ = ["Graph1dStream", "graph_stream", "trace"]


class Graph1dStream(BaseStream):
    """Streams a module by running its traced ``forward`` block by block, exactly.

    ``torch.fx`` traces the module; each submodule call is streamed through the registry (so
    registered handlers, ``nn.Sequential``, residual blocks and layers work inside) and every
    other operation is run on blocks:

    - element-wise arithmetic and activations, functional or as methods, and operations along
      channels (``torch.cat(..., dim=1)``, ``chunk``, ``softmax(dim=1)``, ``F.glu(dim=1)``,
      channel indexing ``y[:, :4]``). Where an operation takes several signal paths (a residual
      ``x + f(x)``, a concatenation), the faster paths wait for the slower: each output is
      emitted as soon as every path has it;
    - constant slices of time (``y[..., :-k]``, the chomp of a TCN; ``y[..., k:]``,
      ``y[..., ::2]``): samples are passed on as soon as they are known to be kept;
    - ``F.pad`` of time, streamed as the matching padding layer.

    Anything else (time reversed, reduced or reshaped, shapes read from the signal) is refused
    when the stream is built, naming the node and its line of source.

    Args:
        module: the module. Its parameters are shared, not copied.
        edges: ``"pad"`` reproduces ``module(x)`` with every padding; ``"valid"`` ignores
            padding, as torch-streamer 0.0.2 did. (Default: ``"pad"``)
        graph: the traced graph of ``module``. (Default: traced here)

    Raises:
        NotStreamableError: for an operation that cannot be streamed, a submodule that cannot
            (its path first, e.g. ``block.norm (GroupNorm): ...``), or a ``forward`` that
            cannot be traced (then register a handler for the module).

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in; out as ``module`` gives.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> class Block(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = torch.nn.Conv1d(2, 2, 3, padding=2)
        ...     def forward(self, x):
        ...         return x + torch.tanh(self.conv(x)[..., :-2])
        >>> block = Block()
        >>> stream = pts.Graph1dStream(block)
        >>> x = torch.randn(2, 30)
        >>> blocks = [stream(x[:, i : i + 4], final=i + 4 >= 30) for i in range(0, 30, 4)]
        >>> torch.testing.assert_close(torch.cat(blocks, dim=-1), block(x))
        >>> stream.lookahead  # the chomp makes the convolution causal
        Fraction(0, 1)
    """

    def __init__(
        self, module: nn.Module, *, edges: Edges = "pad", graph: Optional[fx.Graph] = None
    ) -> None:
        super().__init__()
        check_edges(edges)
        if graph is None:
            try:
                graph = trace(module)
            except Exception as error:
                raise NotStreamableError(
                    f"{type(module).__name__}: torch.fx cannot trace its forward ({error}); "
                    f"write a stream for it and register it with torchstreamer."
                    f"register_streamer({type(module).__name__}, factory)"
                ) from error
        builder = _Builder(module, edges)
        builder.build(graph)
        self.ops: list[Op] = builder.ops
        self.output = builder.output
        # the value of every node that does not change between blocks; the rest is set per block
        self.constants: Env = builder.constants
        self.streams = nn.ModuleList([op.stream for op in builder.ops if isinstance(op, StreamOp)])
        self.aligners = nn.ModuleList([op.aligner for op in builder.ops if isinstance(op, JoinOp)])
        self.graph_timing = builder.output_timing
        assert builder.output_node is not None
        self.output_chain = builder.lengths[builder.output_node]
        # samples received in the stream under way, unless a stream before says more
        self.received = 0
        self.__dict__["_input_length"] = None
        for stream, chain in builder.followers:
            stream.follow(Received(self, chain))
        self.in_channels = builder.in_channels
        self.edges = edges
        self.stream_name = f"Graph1dStream({type(module).__name__})"
        self.module_hint = type(module).__name__

    def follow(self, input_length: Callable[[], int]) -> None:
        """Gives the stream a way to know how long its input would be if the signal ended now.

        Time slices inside then hold back only what may still be dropped (see
        :class:`~torchstreamer.nets._slice.TimeSlice1dStream`); the network around this stream
        provides it.
        """
        self.__dict__["_input_length"] = input_length

    def input_length(self) -> int:
        """How long the input would be if the signal ended now."""
        outer = self.__dict__["_input_length"]
        return self.received if outer is None else int(outer())

    def output_length(self, length: int) -> int:
        """The output length for ``length`` input samples.

        Raises:
            NotImplementedError: if a stream inside does not report its output length.
        """
        if self.output_chain is None:
            raise NotImplementedError(f"{self.stream_name}: a stream inside does not say")
        return self.output_chain(length)

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        try:
            return self._run(x, final)
        except StreamError as error:
            raise locate(error, self._children()) from error

    def _run(self, x: Tensor, final: bool) -> Optional[Tensor]:
        self.received += x.size(-1)
        env = list(self.constants)
        env[0] = x  # the signal: fx puts the placeholders first
        for op in self.ops:
            op.run(env, final)
        y: Optional[Tensor] = env[self.output]
        if final:
            self.received = 0
        if y is None or y.size(-1) == 0:
            return None
        return y

    def reset_state(self) -> None:
        for op in self.ops:
            op.restart()
        self.received = 0

    def _apply(self, fn: Any, recurse: bool = True) -> Graph1dStream:
        # tensors computed once from constants in forward() follow .to(), .cuda(), .half()
        self.constants = [fn(c) if isinstance(c, Tensor) else c for c in self.constants]
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        return self

    def timing(self) -> Timing:
        if self.graph_timing is None:
            raise NotImplementedError(
                f"{self.stream_name}: a stream inside does not report its timing"
            )
        return self.graph_timing

    def _children(self) -> list[Child]:
        return [
            (op.stream, op.name, op.kind) for op in self.ops if isinstance(op, StreamOp) and op.name
        ]

    def extra_repr(self) -> str:
        return "edges='valid'" if self.edges == "valid" else ""


def graph_stream(module: nn.Module, *, edges: Edges = "pad") -> Optional[BaseStream]:
    """The registry's handler for modules without one of their own: a :class:`Graph1dStream`.

    Declines (returns ``None``) for PyTorch's own layers and for modules ``torch.fx`` cannot
    trace, leaving them to the element-wise fallback, which checks them by probing.
    """
    if type(module).__module__.startswith("torch."):
        return None
    try:
        graph = trace(module)
    except Exception:
        return None
    return Graph1dStream(module, edges=edges, graph=graph)


class _Tracer(fx.Tracer):
    """Traces into the modules that have no handler; keeps the others as calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return _has_handler(type(m)) or super().is_leaf_module(m, module_qualified_name)

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        node = super().create_node(*args, **kwargs)
        # the line of forward that made the node, for messages; fx's own stack traces cost a
        # heavy import on first use
        node.meta["torchstreamer_source"] = _calling_line()
        return node


def trace(module: nn.Module) -> fx.Graph:
    """The ``torch.fx`` graph of ``module.forward`` on one signal.

    Further arguments of ``forward`` are fixed at their defaults; modules with a handler in
    the registry are kept as calls, so their handlers stream them.

    Raises:
        TypeError: if ``forward`` needs more than one argument.
        Exception: whatever ``torch.fx`` raises on code it cannot trace.
    """
    parameters = list(inspect.signature(module.forward).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in positional:
        raise TypeError(f"{type(module).__name__}.forward takes no signal argument")
    fixed = {}
    for parameter in parameters[1:]:
        if parameter.default is inspect.Parameter.empty:
            raise TypeError(f"{type(module).__name__}.forward needs a {parameter.name!r} too")
        fixed[parameter.name] = parameter.default
    return _Tracer().trace(module, concrete_args=fixed or None)


def _has_handler(cls: type) -> bool:
    """Whether the registry has a handler for ``cls`` more specific than ``nn.Module``."""
    return handled_type(cls) is not None


_TORCH_DIR = os.path.dirname(torch.__file__)


class _Builder:
    """Turns a traced graph into the operations of a :class:`Graph1dStream`."""

    def __init__(self, root: nn.Module, edges: Edges) -> None:
        self.root = root
        self.edges = edges
        self.owner = type(root).__name__
        self.slots: dict[fx.Node, int] = {}
        self.constants: Env = []
        # the values of every constant and parameter node now, to check shapes
        self.preview: Env = []
        self.recomputed: set[fx.Node] = set()
        self.ops: list[Op] = []
        # signal values: their timing (None when unknown) and the stream they come from
        self.timings: dict[fx.Node, Optional[Timing]] = {}
        self.lengths: dict[fx.Node, Optional[Chain]] = {}
        self.tuples: set[fx.Node] = set()
        # streams that want to know their input's length now, with the chain that gives it
        self.followers: list[tuple[Any, Chain]] = []
        self.in_channels = -1
        self.output = 0
        self.output_node: Optional[fx.Node] = None
        self.output_timing: Optional[Timing] = None

    def build(self, graph: fx.Graph) -> None:
        signal = None
        for node in graph.nodes:
            slot = len(self.constants)
            self.slots[node] = slot
            self.constants.append(None)
            self.preview.append(None)
            if node.op == "placeholder":
                if signal is None:
                    signal = node
                    self.timings[node] = Timing.identity()
                    self.lengths[node] = Chain(())
                else:
                    self.constants[slot] = node.args[0] if node.args else None
                    self.preview[slot] = self.constants[slot]
            elif node.op == "output":
                self._output(node)
            elif node.op == "get_attr":
                assert isinstance(node.target, str)
                owner, _, name = node.target.rpartition(".")
                attribute = Attribute(self.root.get_submodule(owner), name)
                self.ops.append(StaticOp(slot, Call(attribute, (), {})))
                self.preview[slot] = attribute()
                self.recomputed.add(node)
            elif not any(n in self.timings for n in node.all_input_nodes):
                self._static(node, slot)
            else:
                self._signal(node, slot)

    # -- nodes that do not depend on the signal

    def _static(self, node: fx.Node, slot: int) -> None:
        call = self._call(node, self._function(node), node.args, node.kwargs, [])
        with torch.no_grad():
            value = call(self.preview, ())
        self.preview[slot] = value
        if node.op == "call_module" or any(n in self.recomputed for n in node.all_input_nodes):
            # depends on parameters: recomputed on each block, as weights may change
            self.ops.append(StaticOp(slot, call))
            self.recomputed.add(node)
        else:
            self.constants[slot] = value

    # -- nodes of the signal

    def _signal(self, node: fx.Node, slot: int) -> None:
        if node.op == "call_module":
            self._module(node, slot)
            return
        target: Any = node.target
        args, kwargs = node.args, dict(node.kwargs)
        twin = inplace_twin(node.op, target)
        if twin is not None or kwargs.get("inplace") is True:
            self._check_inplace(node)
            target = twin if twin is not None else target
            if "inplace" in kwargs:
                kwargs["inplace"] = False
        if (target is getattr and node.args[1] == "shape") or target in ("size", "dim"):
            self._refuse(
                node,
                "it reads the shape of the signal, whose length is not known until the stream "
                "ends; slice with constants. (Shape-dependent code needs its own stream.)",
            )
        if target is operator.getitem:
            self._getitem(node, slot)
        elif target is F.pad:
            self._pad(node, slot)
        elif is_pointwise(node.op, target):
            self._elementwise(node, slot, target, args, kwargs)
        elif channel_rule(node.op, target) is not None:
            self._along_channels(node, slot, target, args, kwargs)
        else:
            self._refuse(node, "it is not an element-wise operation or one along channels")

    def _check_inplace(self, node: fx.Node) -> None:
        changed = node.args[0]
        if isinstance(changed, fx.Node) and len(changed.users) > 1:
            self._refuse(
                node,
                "it changes a value in place that other operations also read; "
                "use the out-of-place form",
            )

    def _module(self, node: fx.Node, slot: int) -> None:
        assert isinstance(node.target, str)
        module = self.root.get_submodule(node.target)
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(source, fx.Node) or source not in self.timings or source in self.tuples:
            self._refuse(node, "the module is called with more than one signal argument")
        assert isinstance(source, fx.Node)
        stream = build_child(node.target, module, partial(create_stream, module, edges=self.edges))
        if source.op == "placeholder" and stream.in_channels >= 0:
            self.in_channels = stream.in_channels
        self._add_stream(node, slot, source, stream, node.target, type(module).__name__)

    def _add_stream(
        self,
        node: fx.Node,
        slot: int,
        source: fx.Node,
        stream: BaseStream,
        name: str,
        kind: str,
        *,
        read: Optional[int] = None,
    ) -> None:
        """Adds a stream fed ``source`` (or the value in slot ``read``, derived from it)."""
        chain = self.lengths[source]
        if chain is not None and hasattr(stream, "follow"):
            self.followers.append((stream, chain))
        read = self.slots[source] if read is None else read
        self.ops.append(StreamOp(slot, read, stream, name, kind))
        self.timings[node] = _then(self.timings[source], stream)
        self.lengths[node] = None if chain is None else chain.then(length_map(stream))

    def _getitem(self, node: fx.Node, slot: int) -> None:
        source, index = node.args
        assert isinstance(source, fx.Node)
        if source in self.tuples:
            if not isinstance(index, int):
                self._refuse(node, "it indexes a split signal with a non-constant index")
            self._map(node, slot, source, Call(operator.getitem, (Piece(0), index), {}))
            return
        if _has_nodes(index):
            self._refuse(node, "its index is computed from the signal; use constant indices")
        parts = split_time_index(index)
        if parts is None:
            self._refuse(node, "the index changes the rank or indexes time by a non-slice")
        assert parts is not None
        head, time = parts
        if is_full(time):
            self._map(node, slot, source, Call(operator.getitem, (Piece(0), head), {}))
            return
        if not is_full(head[1]):
            # channels first, into a value of its own, then time
            channels = len(self.constants)
            self.constants.append(None)
            self.preview.append(None)
            call = Call(operator.getitem, (Piece(0), head), {})
            self.ops.append(MapOp(channels, self.slots[source], call))
        else:
            channels = self.slots[source]
        try:
            stream = TimeSlice1dStream(time.start, time.stop, time.step)
        except NotStreamableError as error:
            self._refuse(node, error.reason)
        self._add_stream(node, slot, source, stream, "", "slice", read=channels)

    def _pad(self, node: fx.Node, slot: int) -> None:
        # F.pad(input, pad, mode="constant", value=None); a builtin without a signature
        given: dict[str, Any] = dict(
            zip(("input", "pad", "mode", "value"), node.args, strict=False)
        )
        given.update(node.kwargs)
        source, pad = given["input"], given["pad"]
        mode, value = given.get("mode", "constant"), given.get("value")
        if _has_nodes(pad) or _has_nodes(value) or not isinstance(source, fx.Node):
            self._refuse(node, "its padding is computed from the signal")
        if len(pad) % 2 or any(pad[2:]):
            self._refuse(node, "it pads other dimensions than time")
        left, right = int(pad[0]), int(pad[1])
        layers: dict[str, nn.Module] = {
            "constant": nn.ConstantPad1d((left, right), 0.0 if value is None else float(value)),
            "reflect": nn.ReflectionPad1d((left, right)),
            "replicate": nn.ReplicationPad1d((left, right)),
            "circular": nn.CircularPad1d((left, right)),
        }
        if mode not in layers:
            self._refuse(node, f"padding mode {mode!r} is not one of {sorted(layers)}")
        layer = layers[mode]
        try:
            stream = create_stream(layer, edges=self.edges)
        except StreamError as error:
            self._refuse(node, error.reason)
        self._add_stream(node, slot, source, stream, "", f"F.pad {mode}")

    def _elementwise(
        self, node: fx.Node, slot: int, target: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        if target not in PER_CHANNEL_OPERANDS:
            for operand in node.all_input_nodes:
                if (
                    operand not in self.timings
                    and time_extent(self.preview[self.slots[operand]]) > 1
                ):
                    self._refuse(
                        node,
                        f"it broadcasts {operand.name} along time; only constants of time "
                        "length 1 can be combined with the signal",
                    )
        self._combine(node, slot, target, args, kwargs)

    def _along_channels(
        self, node: fx.Node, slot: int, target: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        rule = channel_rule(node.op, target)
        assert rule is not None
        dim, keepdim = rule_dims(rule, args, kwargs)
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        if not all(d in (1, -2) for d in dims):
            self._refuse(node, f"it works along dimension {dim}, not along channels (1 or -2)")
        if keepdim is not True:
            self._refuse(node, "it drops the channel dimension; pass keepdim=True")
        concatenates = target in (torch.cat, torch.concat, torch.concatenate)
        if concatenates and any(n not in self.timings for n in node.all_input_nodes):
            self._refuse(node, "it concatenates the signal with a constant")
        if rule.splits:
            self.tuples.add(node)
        self._combine(node, slot, target, args, kwargs)

    def _combine(
        self, node: fx.Node, slot: int, target: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        signals = [n for n in node.all_input_nodes if n in self.timings]
        if any(n in self.tuples for n in signals):
            self._refuse(node, "it takes a split signal as a whole")
        fn = Method(target) if node.op == "call_method" else target
        call = self._call(node, fn, args, kwargs, signals)
        if len(signals) == 1:
            self._map(node, slot, signals[0], call)
            return
        timings = [self.timings[n] for n in signals]
        known = [t for t in timings if t is not None]
        if len({t.rate for t in known}) > 1:
            shown = ", ".join(
                f"{n.name} at rate {t.rate}" for n, t in zip(signals, known, strict=True)
            )
            self._refuse(node, f"it combines signals at different sample rates ({shown})")
        aligner = PathAligner(len(signals), strict=f"node {node.name} ({_what(node)})")
        self.ops.append(JoinOp(slot, [self.slots[n] for n in signals], call, aligner))
        self.timings[node] = Timing.parallel(known) if len(known) == len(timings) else None
        # the inputs have one length (offline fails otherwise): any known chain gives it
        self.lengths[node] = next((self.lengths[n] for n in signals if self.lengths[n]), None)

    def _map(self, node: fx.Node, slot: int, source: fx.Node, call: Call) -> None:
        self.ops.append(MapOp(slot, self.slots[source], call))
        self.timings[node] = self.timings[source]
        self.lengths[node] = self.lengths[source]

    def _output(self, node: fx.Node) -> None:
        result = node.args[0]
        if not isinstance(result, fx.Node) or result not in self.timings or result in self.tuples:
            raise NotStreamableError(
                f"{self.owner}: forward must return one tensor computed from its input; "
                f"write a stream for it and register it with "
                f"torchstreamer.register_streamer({self.owner}, factory)"
            )
        self.output = self.slots[result]
        self.output_node = result
        self.output_timing = self.timings[result]

    # -- helpers

    def _function(self, node: fx.Node) -> Any:
        if node.op == "call_method":
            return Method(str(node.target))
        if node.op == "call_module":
            assert isinstance(node.target, str)
            return self.root.get_submodule(node.target)
        return node.target

    def _call(
        self, node: fx.Node, fn: Any, args: Any, kwargs: dict[str, Any], signals: list[fx.Node]
    ) -> Call:
        positions = {n: k for k, n in enumerate(signals)}

        def mark(n: fx.Node) -> Any:
            return Piece(positions[n]) if n in positions else Slot(self.slots[n])

        return Call(fn, fx.node.map_arg(args, mark), fx.node.map_arg(kwargs, mark))

    def _refuse(self, node: fx.Node, reason: str) -> NoReturn:
        raise NotStreamableError(
            f"cannot stream node {node.name} ({_what(node)}) of {self.owner}.forward"
            f"{_source(node)}: {reason}. Write a stream for {self.owner} and register it with "
            f"torchstreamer.register_streamer({self.owner}, factory)"
        )


def _then(before: Optional[Timing], stream: BaseStream) -> Optional[Timing]:
    if before is None:
        return None
    try:
        return before.then(stream.timing())
    except NotImplementedError:
        return None


def _has_nodes(value: Any) -> bool:
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return bool(found)


def _what(node: fx.Node) -> str:
    if node.op == "call_method":
        return f".{node.target}()"
    if node.op == "call_module":
        return f"self.{node.target}"
    name = getattr(node.target, "__name__", None) or repr(node.target)
    module = getattr(node.target, "__module__", None)
    return f"{module}.{name}" if module and module not in ("_operator", "builtins") else name


def _calling_line() -> str:
    """`` at file.py:12: `code` ``: the innermost line of code outside torch and this file."""
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_TORCH_DIR) and path != __file__:
            code = linecache.getline(path, frame.f_lineno).strip()
            where = f" at {os.path.basename(path)}:{frame.f_lineno}"
            return where + (f": `{code}`" if code else "")
        frame = frame.f_back
    return ""


def _source(node: fx.Node) -> str:
    return str(node.meta.get("torchstreamer_source", ""))

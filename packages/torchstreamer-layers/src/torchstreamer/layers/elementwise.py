"""Element-wise modules: their stream, and the handlers that accept, refuse or probe modules."""

import importlib.util
import itertools
import threading
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchstreamer.core import BaseStream, Edges, Handler, NotStreamableError, Timing, check_edges
from torchstreamer.testing import tolerance

__all__ = ["Elementwise1dStream", "elementwise_handlers"]

# modules whose output at time t depends on the input at time t alone (some on conditions,
# checked by _time_mixing)
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardshrink,
    nn.Softshrink,
    nn.Tanhshrink,
    nn.Softplus,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Threshold,
    nn.GLU,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softmin,
    nn.Dropout,
    nn.AlphaDropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.FeatureAlphaDropout,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
)

# modules that mix time while keeping the length: refused when the stream is built
TIME_MIXING: tuple[type[nn.Module], ...] = (
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
    nn.RNNBase,
    nn.MultiheadAttention,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.Linear,
    nn.Bilinear,
)

CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)

# On the CPU, float32 GELU runs through oneDNN, which costs about 6 µs per call whatever the
# size; PyTorch's own kernel takes about 1 µs on a short block and stays faster up to some
# 16k elements. The two agree to float32 rounding. Short blocks take PyTorch's kernel.
GELU_NATIVE_ELEMENTS = 16384
# oneDNN is switched off around such a call through the one global switch PyTorch has; the
# lock keeps streams in several threads from restoring each other's setting out of order
_ONEDNN_SWITCH = threading.Lock()

# the probe: a fixed random block, cut into pieces at these points
PROBE_LENGTH = 24
PROBE_CUTS = (1, 11)


class Elementwise1dStream(BaseStream):
    """Streams a module that acts on each time step on its own (receptive field 1).

    Activations, dropout, per-channel affine maps, eval-mode batch norm and the like: each
    block goes through the module as it is, with no state and no delay. Blocks are
    ``[B, C, T]`` (a ``[C, T]`` block is given to the module as ``[1, C, T]``, as in
    torch-streamer 0.0.2, so modules that read dim 1 as channels, such as ``BatchNorm1d``,
    ``PReLU`` or ``Softmax(dim=1)``, see channels there whatever the caller's layout);
    empty blocks return ``None`` without calling the module.

    Known time-mixing modules (``GroupNorm``, ``LayerNorm``, training-mode or statistics-free
    ``BatchNorm1d``, adaptive pooling, RNNs, attention, ``Linear`` on the time axis, softmax
    over time...) are refused; the mode of a module is checked when the stream is built, so
    a ``BatchNorm1d`` switched to training mode afterwards is not noticed. Any other module
    is taken at its word here; with ``verify=True`` (what :func:`torchstreamer.create_stream`
    does for a module without a handler) the first non-empty block is preceded by a probe
    that applies the module to a random block of the same batch size, channels, dtype and
    device, whole and cut into pieces, and refuses it unless both give the same samples.
    The probe calls the module three times, under ``torch.no_grad()``; a module that changes
    its own state in ``forward`` cannot be probed honestly and needs a registered stream.
    The probe runs in Python: a stream built with ``verify=True`` must stream one block
    before ``torch.jit.script``.

    Args:
        module: the element-wise module.
        edges: accepted for a uniform signature; an element-wise module has no edges.
            (Default: ``"pad"``)
        verify: probe the module on the first non-empty block before trusting it.
            (Default: False)

    Raises:
        NotStreamableError: for a known time-mixing module or option; with ``verify=True``,
            on the first non-empty block if the probe shows that the module is not
            element-wise (before anything is emitted).
        RuntimeError: ``invalid_elementwise_output`` when the module returns another length
            or batch size than it was given, as in torch-streamer 0.0.2.

    Shape:
        ``[B, C_in, T]`` or ``[C_in, T]`` in, ``[B, C_out, T]`` or ``[C_out, T]`` out.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> stream = pts.Elementwise1dStream(torch.nn.GELU())
        >>> x = torch.randn(2, 10)
        >>> torch.testing.assert_close(stream(x), torch.nn.functional.gelu(x))
        >>> stream.receptive_field
        1
    """

    def __init__(self, module: nn.Module, *, edges: Edges = "pad", verify: bool = False) -> None:
        super().__init__()
        check_edges(edges)
        reason = _time_mixing(module)
        if reason is not None:
            raise NotStreamableError(_refusal(module, reason))
        self.module = module
        self.edges = edges
        self.unverified = verify
        self.onednn_gelu = (
            type(module) is nn.GELU
            and module.approximate == "none"
            and hasattr(torch._C, "_set_mkldnn_enabled")
        )
        self.in_channels = _channels(module)
        self.module_hint = repr(module)

    def step(self, x: Tensor, final: bool = False) -> Optional[Tensor]:
        if x.size(-1) == 0:
            return None
        if self.unverified:
            if torch.jit.is_scripting():
                raise RuntimeError(
                    self.stream_name + ": the module has not been probed yet; stream one block "
                    "before scripting"
                )
            self._verify(x)
        if self.onednn_gelu and not torch.jit.is_scripting():
            # an nn.GELU keeps the shape: nothing to check
            return self._gelu(x)
        y: Tensor = self.module(x)
        if y.dim() != 3 or y.size(0) != x.size(0) or y.size(-1) != x.size(-1):
            raise RuntimeError(
                "invalid_elementwise_output: "
                + self.stream_name
                + " expects its module to keep the batch size and length of a [B, C, T] "
                + "block; "
                + self.module_hint
                + " turned "
                + str(list(x.shape))
                + " into "
                + str(list(y.shape))
            )
        return y

    @torch.jit.unused
    def demand(self, outputs: int) -> int:
        return outputs

    @torch.jit.unused
    def _gelu(self, x: Tensor) -> Tensor:
        """The GELU module on ``x``, with PyTorch's own kernel for short float32 blocks.

        ``F.gelu`` itself rather than the module: what ``nn.GELU(approximate="none")`` runs,
        without the module call, as the other layer streams call their functional forms.
        """
        if (
            x.numel() > GELU_NATIVE_ELEMENTS
            or x.dtype is not torch.float32
            or not x.is_cpu
            or torch.compiler.is_compiling()
        ):
            return F.gelu(x, approximate=self._approximate())
        with _ONEDNN_SWITCH:
            enabled = torch._C._get_mkldnn_enabled()
            torch._C._set_mkldnn_enabled(False)
            try:
                return F.gelu(x, approximate=self._approximate())
            finally:
                torch._C._set_mkldnn_enabled(enabled)

    @torch.jit.unused
    def _approximate(self) -> str:
        # read on each block, as the module's forward does
        return str(self.module.approximate)

    @torch.jit.unused
    def _verify(self, x: Tensor) -> None:
        """Probes the module with a block like ``x``; raises unless it is element-wise."""
        reason = _probe(self.module, x)
        if reason is not None:
            hint = ""
            if next(self.module.children(), None) is not None and not _nets_installed():
                hint = (
                    " torchstreamer-nets streams networks made of supported layers: "
                    "pip install torchstreamer-nets."
                )
            raise NotStreamableError(_refusal(self.module, reason) + hint)
        self.unverified = False

    def timing(self) -> Timing:
        return Timing.identity()


def elementwise_handlers() -> list[Handler]:
    """The handlers for element-wise and time-mixing modules, and the fallback for the rest.

    - Known element-wise modules (activations, dropout, eval-mode ``BatchNorm1d``...) get an
      :class:`Elementwise1dStream`; softmax and ``GLU`` only over ``dim=1`` or ``dim=-2``, the
      channels of a ``[B, C, T]`` block (over ``[C, T]`` blocks, ``dim=1`` would be time
      offline: give such modules ``dim=-2``).
    - Known time-mixing modules are refused with a :class:`NotStreamableError` that names them
      and says how to register a stream.
    - Any other module (the ``nn.Module`` fallback, priority 0) gets an
      :class:`Elementwise1dStream` with ``verify=True``: it is probed on the first block and
      refused unless it is element-wise. ``nn.Sequential`` needs torchstreamer-nets; module
      containers without ``forward`` are refused.
    """
    return [
        *(Handler(module_type, Elementwise1dStream) for module_type in ELEMENTWISE),
        *(Handler(module_type, Elementwise1dStream) for module_type in TIME_MIXING),
        Handler(nn.Module, _probing_stream),
    ]


def _probing_stream(module: nn.Module, *, edges: Edges = "pad") -> Elementwise1dStream:
    """The fallback handler: an element-wise stream that probes the module first."""
    name = type(module).__name__
    if isinstance(module, CONTAINERS):
        raise NotStreamableError(
            f"{name} is a container without forward(); stream the module that calls its "
            "members instead"
        )
    if isinstance(module, nn.Sequential) and not _nets_installed():
        raise NotStreamableError(
            f"{name} is streamed by Sequential1dStream, part of the torchstreamer-nets "
            "distribution, which is not installed: pip install torchstreamer-nets"
        )
    return Elementwise1dStream(module, edges=edges, verify=True)


def _time_mixing(module: nn.Module) -> Optional[str]:
    """Why ``module`` mixes time, if it is known to; None if it does not or is unknown."""
    if isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)):
        return "normalizes with statistics over time (the last dimension of [B, C, T])"
    if isinstance(module, (nn.BatchNorm1d, nn.InstanceNorm1d)):
        # only eval mode with running statistics leaves time alone
        if module.running_mean is None:
            return "has no running statistics, so it normalizes with statistics over time"
        if module.training:
            return (
                "is in training mode, where it normalizes with statistics over time; call .eval()"
            )
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)):
        return "pools the whole signal into a fixed number of outputs"
    if isinstance(module, nn.RNNBase):
        return "is recurrent: each output depends on every earlier sample"
    if isinstance(
        module,
        (
            nn.MultiheadAttention,
            nn.Transformer,
            nn.TransformerEncoder,
            nn.TransformerDecoder,
            nn.TransformerEncoderLayer,
            nn.TransformerDecoderLayer,
        ),
    ):
        return "attends across time"
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return "acts on the last dimension, which is time in a [B, C, T] signal"
    if isinstance(module, (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.GLU)):
        dim = module.dim
        if dim not in (1, -2):
            return (
                f"works along dim={dim}; only dim=1 or dim=-2 (the channels of [B, C, T]) "
                "leaves time alone"
            )
    if (
        isinstance(module, (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout))
        and module.training
    ):
        return "drops whole channels across time in training mode; call .eval()"
    return None


def _refusal(module: nn.Module, reason: str) -> str:
    name = type(module).__name__
    shown = repr(module)
    # a one-line repr shows the options; a network's would bury the message
    where = f" ({shown})" if "\n" not in shown else ""
    return (
        f"{name} {reason}, so it cannot be streamed as an element-wise layer{where}. "
        f"Write a BaseStream for it and register it with "
        f"torchstreamer.register_streamer({name}, factory)."
    )


def _probe(module: nn.Module, like: Tensor) -> Optional[str]:
    """Why ``module`` is not element-wise on blocks like ``like``, or None if it is.

    Applies it to a fixed random block, whole and cut into pieces, and compares.
    """
    generator = torch.Generator().manual_seed(0)
    block = torch.randn(
        like.size(0), like.size(1), PROBE_LENGTH, generator=generator, dtype=torch.float64
    ).to(like)
    bounds = (0, *PROBE_CUTS, PROBE_LENGTH)
    shape = list(block.shape)
    try:
        with torch.no_grad():
            whole = module(block)
            pieces = [module(block[..., a:b]) for a, b in itertools.pairwise(bounds)]
            if not isinstance(whole, Tensor) or not all(isinstance(p, Tensor) for p in pieces):
                return f"returned {type(whole).__name__}, not a tensor, for a block of {shape}"
            if whole.dim() != 3 or whole.size(0) != shape[0] or whole.size(-1) != shape[-1]:
                return (
                    f"does not keep the batch size and length of a block: it turned {shape} "
                    f"into {list(whole.shape)}"
                )
            joined = torch.cat(pieces, dim=-1)
    except Exception as error:  # the module's own failure on a probe is reported, not raised
        return (
            f"failed on a probe block of {shape} and its pieces ({type(error).__name__}: {error})"
        )
    atol, rtol = tolerance(like.dtype)
    if joined.shape != whole.shape or not torch.allclose(
        joined, whole, atol=atol, rtol=rtol, equal_nan=True
    ):
        random_hint = " (a random module in training mode? call .eval())" if module.training else ""
        return (
            "is not element-wise: applied to a block cut into pieces it gives other samples "
            f"than applied to the whole block{random_hint}"
        )
    return None


def _channels(module: nn.Module) -> int:
    """The input channels ``module`` needs, or -1 when it takes any number."""
    if isinstance(module, (nn.BatchNorm1d, nn.InstanceNorm1d)):
        return int(module.num_features)
    if isinstance(module, nn.PReLU) and module.num_parameters > 1:
        return int(module.num_parameters)
    return -1


def _nets_installed() -> bool:
    try:
        return importlib.util.find_spec("torchstreamer.nets") is not None
    except ImportError:
        return False

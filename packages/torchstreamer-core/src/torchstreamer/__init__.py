"""torchstreamer: exact streaming inference of 1D PyTorch networks.

``import torchstreamer as pts`` gives every public name of the installed distributions. Names are
imported on first use, so importing the package is cheap; a name whose distribution is not
installed raises an ImportError that says which distribution to install.

Example:
    >>> import torch
    >>> import torchstreamer as pts
    >>> conv = torch.nn.Conv1d(1, 1, 3, padding=1)
    >>> stream = pts.create_stream(conv)
    >>> x = torch.randn(1, 10)
    >>> y = torch.cat([stream(x[:, :4]), stream(x[:, 4:], final=True)], dim=-1)
    >>> torch.testing.assert_close(y, conv(x))
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# Every public name, the module that defines it and the distribution that ships that module.
_PUBLIC: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        (
            "ENTRY_POINT_GROUP",
            "BaseStream",
            "Edges",
            "Handler",
            "NotStreamableError",
            "StreamError",
            "StreamFactory",
            "TimeBuffer",
            "Timing",
            "buffered_samples",
            "check_edges",
            "create_stream",
            "describe",
            "handled_type",
            "register_streamer",
            "state_tensor",
            "unregister_streamer",
        ),
        ("torchstreamer.core", "torchstreamer-core"),
    ),
    **dict.fromkeys(
        (
            "Conv1dStream",
            "ConvTranspose1dStream",
            "Elementwise1dStream",
            "Pad1dStream",
            "Pool1dStream",
            "Upsample1dStream",
            "WindowStream",
        ),
        ("torchstreamer.layers", "torchstreamer-layers"),
    ),
    **dict.fromkeys(
        (
            "Concat1d",
            "Concat1dStream",
            "Graph1dStream",
            "Parallel1d",
            "Parallel1dStream",
            "Residual1d",
            "Residual1dStream",
            "Sequential1dStream",
        ),
        ("torchstreamer.nets", "torchstreamer-nets"),
    ),
    **dict.fromkeys(
        ("Resample", "ResampleStream"),
        ("torchstreamer.contrib", "torchstreamer-contrib"),
    ),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


__all__ = sorted(name for name, (module, _) in _PUBLIC.items() if _installed(module))


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'torchstreamer' has no attribute {name!r}")
    module_name, distribution = _PUBLIC[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        # only the member itself (or its parent package) missing means "not installed";
        # a dependency it failed to import is a different problem and comes through as it is
        if error.name is not None and (module_name + ".").startswith(error.name + "."):
            raise ImportError(
                f"torchstreamer.{name} is part of the {distribution} distribution, which is "
                f"not installed: pip install {distribution}",
                name=module_name,
            ) from error
        raise
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    # "X as X": the names are re-exported for type checkers (implicit re-exports are off in
    # strict mode, and __all__ above is computed, so they cannot read it)
    from torchstreamer.contrib import Resample as Resample
    from torchstreamer.contrib import ResampleStream as ResampleStream
    from torchstreamer.core import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from torchstreamer.core import BaseStream as BaseStream
    from torchstreamer.core import Edges as Edges
    from torchstreamer.core import Handler as Handler
    from torchstreamer.core import NotStreamableError as NotStreamableError
    from torchstreamer.core import StreamError as StreamError
    from torchstreamer.core import StreamFactory as StreamFactory
    from torchstreamer.core import TimeBuffer as TimeBuffer
    from torchstreamer.core import Timing as Timing
    from torchstreamer.core import buffered_samples as buffered_samples
    from torchstreamer.core import check_edges as check_edges
    from torchstreamer.core import create_stream as create_stream
    from torchstreamer.core import describe as describe
    from torchstreamer.core import handled_type as handled_type
    from torchstreamer.core import register_streamer as register_streamer
    from torchstreamer.core import state_tensor as state_tensor
    from torchstreamer.core import unregister_streamer as unregister_streamer
    from torchstreamer.layers import Conv1dStream as Conv1dStream
    from torchstreamer.layers import ConvTranspose1dStream as ConvTranspose1dStream
    from torchstreamer.layers import Elementwise1dStream as Elementwise1dStream
    from torchstreamer.layers import Pad1dStream as Pad1dStream
    from torchstreamer.layers import Pool1dStream as Pool1dStream
    from torchstreamer.layers import Upsample1dStream as Upsample1dStream
    from torchstreamer.layers import WindowStream as WindowStream
    from torchstreamer.nets import Concat1d as Concat1d
    from torchstreamer.nets import Concat1dStream as Concat1dStream
    from torchstreamer.nets import Graph1dStream as Graph1dStream
    from torchstreamer.nets import Parallel1d as Parallel1d
    from torchstreamer.nets import Parallel1dStream as Parallel1dStream
    from torchstreamer.nets import Residual1d as Residual1d
    from torchstreamer.nets import Residual1dStream as Residual1dStream
    from torchstreamer.nets import Sequential1dStream as Sequential1dStream

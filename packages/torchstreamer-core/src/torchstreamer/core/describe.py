"""A per-stream table of timing figures."""

from __future__ import annotations

from .stream import BaseStream

__all__ = ["describe"]


def describe(stream: BaseStream) -> str:
    """Returns a table of every stream inside ``stream`` with its timing figures.

    One row per stream (the stream itself first, then its children, depth first): its path, its
    type, receptive field, rate and lookahead. Figures a stream does not report show as ``?``.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> print(pts.describe(pts.create_stream(torch.nn.Conv1d(1, 1, 5, padding=2))))
        path  stream        receptive_field  rate  lookahead
        .     Conv1dStream  5                1     2
    """
    header = ("path", "stream", "receptive_field", "rate", "lookahead")
    rows = [header]
    for path, module in stream.named_modules():
        if not isinstance(module, BaseStream):
            continue
        try:
            timing = module.timing()
            figures = (str(timing.receptive_field), str(timing.rate), str(timing.lookahead))
        except NotImplementedError:
            figures = ("?", "?", "?")
        rows.append((path or ".", module.stream_name, *figures))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )

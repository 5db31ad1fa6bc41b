"""A per-stream table of timing figures."""

from __future__ import annotations

from torch import nn

from .stream import BaseStream

__all__ = ["buffered_samples", "describe"]


def describe(stream: BaseStream, *, buffered: bool = False) -> str:
    """Returns a table of every stream inside ``stream`` with its timing figures.

    One row per stream (the stream itself first, then its children, depth first): its path, its
    type, receptive field, rate and lookahead. Figures a stream does not report show as ``?``.

    Args:
        stream: the stream to describe.
        buffered: add a column with the samples each stream holds now (see
            :func:`buffered_samples`). (Default: False)

    Returns:
        the table, columns separated by spaces, without a trailing newline.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> stream = pts.create_stream(torch.nn.Conv1d(1, 1, 5, padding=2))
        >>> print(pts.describe(stream))
        path  stream        receptive_field  rate  lookahead
        .     Conv1dStream  5                1     2
        >>> _ = stream(torch.randn(1, 10))
        >>> print(pts.describe(stream, buffered=True))
        path  stream        receptive_field  rate  lookahead  buffered
        .     Conv1dStream  5                1     2          4
    """
    header = ["path", "stream", "receptive_field", "rate", "lookahead"]
    if buffered:
        header.append("buffered")
    rows = [header]
    for path, module in stream.named_modules():
        if not isinstance(module, BaseStream):
            continue
        try:
            timing = module.timing()
            figures = (str(timing.receptive_field), str(timing.rate), str(timing.lookahead))
        except NotImplementedError:
            figures = ("?", "?", "?")
        row = [path or ".", module.stream_name, *figures]
        if buffered:
            row.append(str(buffered_samples(module)))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def buffered_samples(stream: nn.Module) -> int:
    """Samples held now by ``stream`` and everything inside it.

    Every module in the subtree with an integer ``held`` attribute counts: each
    :class:`~torchstreamer.core.TimeBuffer`, and streams that keep their own state and say how
    many samples it spans in ``held``. Each counts samples at the rate of the layer holding them
    (a buffer after a stride-2 layer holds half-rate samples), so the figure says where state
    sits, not a latency. 0 before the first block and after ``final=True``.

    Example:
        >>> import torch
        >>> import torchstreamer as pts
        >>> stream = pts.create_stream(torch.nn.Conv1d(1, 1, 3))
        >>> _ = stream(torch.randn(1, 10))
        >>> buffered_samples(stream)
        2
    """
    total = 0
    for module in stream.modules():
        held = getattr(module, "held", None)
        if isinstance(held, int) and not isinstance(held, bool):
            total += held
    return total

"""Measures the latency of the seed network against block size and draws docs/assets/latency.svg.

Run from the repository root after changing a stream's timing or this script:

    python docs/scripts/latency_plot.py

The network is the ``Sequential`` of torch-streamer's README (``torchstreamer.core.cli``'s
``seed_sequential``). A signal is streamed in blocks of each size; output ``j`` stands at input
time ``j / rate``, and its latency is how many input samples past that time had arrived when the
stream returned it. The figure shows the worst and the mean over the steady state, and the
bound ``block + lookahead - 1``: a block's first sample waits for the block's last one, then for
the lookahead. The SVG is written by hand, so the script needs nothing beyond torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import torch

import torchstreamer as pts
from torchstreamer.core.cli import seed_sequential

BLOCKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LENGTH = 2048
OUTPUT = Path(__file__).resolve().parents[1] / "assets" / "latency.svg"


def latencies(stream: pts.BaseStream, x: torch.Tensor, block: int) -> list[Fraction]:
    """The latency of every output, in input samples, streaming ``x`` in blocks of ``block``."""
    rate = stream.rate
    received = 0
    emitted = 0
    found: list[Fraction] = []
    with torch.no_grad():
        for start in range(0, x.shape[-1], block):
            piece = x[..., start : start + block]
            y = stream(piece)
            received += piece.shape[-1]
            count = 0 if y is None else y.shape[-1]
            # the newest input is sample received - 1; output j stands at input time j / rate
            found += [received - 1 - j / rate for j in range(emitted, emitted + count)]
            emitted += count
    stream.reset()
    return found


def measure() -> tuple[Fraction, list[tuple[int, float, float]]]:
    """The stream's lookahead and, per block size, the worst and the mean latency."""
    net = seed_sequential()
    stream = pts.create_stream(net)
    x = torch.randn(1, LENGTH, generator=torch.Generator().manual_seed(0))
    rows = []
    for block in BLOCKS:
        found = latencies(stream, x, block)
        # the last blocks of a stream that is not final hold outputs back: skip them
        steady = found[: len(found) * 3 // 4]
        rows.append((block, float(max(steady)), float(sum(steady) / len(steady))))
    return stream.lookahead, rows


def svg(lookahead: Fraction, rows: list[tuple[int, float, float]]) -> str:
    """A log-log line chart of the measured latencies and the bound."""
    width, height = 640, 400
    left, right, top, bottom = 70, 20, 30, 60
    x_lo, x_hi = math.log2(BLOCKS[0]), math.log2(BLOCKS[-1])
    y_values = [value for _, worst, mean in rows for value in (worst, mean)]
    y_lo = math.floor(math.log2(min(y_values))) - 1  # a margin below the lowest line
    y_hi = math.ceil(math.log2(max(BLOCKS[-1] + float(lookahead), *y_values)))

    def px(block: float) -> float:
        return left + (math.log2(block) - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(value: float) -> float:
        return top + (y_hi - math.log2(value)) / (y_hi - y_lo) * (height - top - bottom)

    def polyline(points: Sequence[tuple[float, float]], style: str) -> str:
        text = " ".join(f"{px(b):.1f},{py(v):.1f}" for b, v in points)
        return f'<polyline points="{text}" fill="none" {style}/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for block in BLOCKS:
        parts.append(
            f'<line x1="{px(block):.1f}" y1="{top}" x2="{px(block):.1f}" '
            f'y2="{height - bottom}" stroke="#e0e0e0"/>'
            f'<text x="{px(block):.1f}" y="{height - bottom + 18}" '
            f'text-anchor="middle">{block}</text>'
        )
    for power in range(y_lo, y_hi + 1):
        y = py(2.0**power)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{2**power}</text>'
        )
    parts += [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 18}" text-anchor="middle">'
        "block size (input samples)</text>",
        f'<text transform="translate(18 {(top + height - bottom) / 2}) rotate(-90)" '
        'text-anchor="middle">latency (input samples)</text>',
    ]
    bound = [(b, b + float(lookahead) - 1) for b in BLOCKS]
    worst = [(b, w) for b, w, _ in rows]
    mean = [(b, m) for b, _, m in rows]
    parts.append(polyline(bound, 'stroke="#888" stroke-width="2" stroke-dasharray="6 4"'))
    parts.append(polyline(worst, 'stroke="#c0392b" stroke-width="2"'))
    parts.append(polyline(mean, 'stroke="#2471a3" stroke-width="2"'))
    for points, colour in ((worst, "#c0392b"), (mean, "#2471a3")):
        parts += [
            f'<circle cx="{px(b):.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour}"/>'
            for b, v in points
        ]
    legend = [
        ("#c0392b", "", "worst latency, measured"),
        ("#2471a3", "", "mean latency, measured"),
        ("#888", ' stroke-dasharray="6 4"', f"block + lookahead - 1 (lookahead {lookahead})"),
    ]
    for index, (colour, dash, label) in enumerate(legend):
        y = top + 12 + 20 * index
        parts.append(
            f'<line x1="{left + 16}" y1="{y}" x2="{left + 46}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/><text x="{left + 54}" y="{y + 4}">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    torch.set_num_threads(1)
    lookahead, rows = measure()
    for block, worst, mean in rows:
        print(f"block {block:4d}: worst {worst:7.1f}, mean {mean:7.1f} input samples")
    OUTPUT.write_text(svg(lookahead, rows))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

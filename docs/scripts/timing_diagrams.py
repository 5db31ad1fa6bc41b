"""Draws the dependency diagrams of the timing concepts page (docs/assets/*.svg).

Run from the repository root after changing this script:

    python docs/scripts/timing_diagrams.py

Each diagram is a stack of rows of samples, bottom to top; an arrow joins a sample to the
samples of the row below that it depends on, and the samples one chosen output depends on, its
receptive field, are highlighted. Padding samples are drawn dashed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CELL, GAP, ROW = 34, 8, 92
HIGHLIGHT, PLAIN, EDGE = "#f5b041", "#ffffff", "#c0392b"


@dataclass(frozen=True)
class Row:
    """One signal: its label, its sample indices and which of them are padding."""

    label: str
    indices: range
    padding: frozenset[int] = frozenset()


Span = Callable[[int], tuple[int, int]]  # output j -> (first, last) index in the row below


def draw(rows: list[Row], spans: list[Span], chosen: int) -> str:
    """The SVG of ``rows`` (bottom first), highlighting the cone of output ``chosen``."""
    low = min(index for row in rows for index in row.indices)
    high = max(index for row in rows for index in row.indices)
    left = 80
    width = left + (high - low + 1) * (CELL + GAP) + 20
    height = len(rows) * ROW

    def x_of(index: int) -> float:
        return left + (index - low) * (CELL + GAP) + CELL / 2

    def y_of(level: int) -> float:
        return height - 20 - level * ROW - CELL / 2

    # the cone: the samples of each row that the chosen output depends on
    cones: list[set[int]] = [set() for _ in rows]
    cones[-1] = {chosen}
    for level in range(len(rows) - 1, 0, -1):
        # a padding sample is a constant: it depends on nothing below it
        for j in cones[level] - rows[level].padding:
            first, last = spans[level - 1](j)
            cones[level - 1].update(range(first, last + 1))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for level in range(1, len(rows)):
        for j in rows[level].indices:
            if j in rows[level].padding:
                continue
            first, last = spans[level - 1](j)
            for i in range(first, last + 1):
                if i not in rows[level - 1].indices:
                    continue
                hot = j in cones[level] and i in cones[level - 1]
                colour, stroke = (EDGE, 2) if hot else ("#bbbbbb", 1)
                parts.append(
                    f'<line x1="{x_of(j):.1f}" y1="{y_of(level) + CELL / 2:.1f}" '
                    f'x2="{x_of(i):.1f}" y2="{y_of(level - 1) - CELL / 2:.1f}" '
                    f'stroke="{colour}" stroke-width="{stroke}"/>'
                )
    for level, row in enumerate(rows):
        parts.append(
            f'<text x="10" y="{y_of(level) + 5:.1f}" font-weight="bold">{row.label}</text>'
        )
        for i in row.indices:
            fill = HIGHLIGHT if i in cones[level] else PLAIN
            dash = ' stroke-dasharray="4 3"' if i in row.padding else ""
            parts.append(
                f'<rect x="{x_of(i) - CELL / 2:.1f}" y="{y_of(level) - CELL / 2:.1f}" '
                f'width="{CELL}" height="{CELL}" rx="4" fill="{fill}" stroke="#333"{dash}/>'
                f'<text x="{x_of(i):.1f}" y="{y_of(level) + 5:.1f}" '
                f'text-anchor="middle">{i}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ASSETS.mkdir(exist_ok=True)
    # Conv1d(kernel_size=3, stride=2, padding=1) on 10 samples: output j reads 2j-1 .. 2j+1
    window = draw(
        [Row("input", range(-1, 11), frozenset({-1, 10})), Row("output", range(5))],
        [lambda j: (2 * j - 1, 2 * j + 1)],
        chosen=2,
    )
    (ASSETS / "timing-window.svg").write_text(window)
    # a "same" kernel-3 convolution, then that strided one: the receptive fields compose; the
    # second convolution's padding (-1 and 10 of "conv 1") is its own, not conv 1's output
    chain = draw(
        [
            Row("input", range(-1, 11), frozenset({-1, 10})),
            Row("conv 1", range(-1, 11), frozenset({-1, 10})),
            Row("conv 2", range(5)),
        ],
        [lambda j: (j - 1, j + 1), lambda j: (2 * j - 1, 2 * j + 1)],
        chosen=2,
    )
    (ASSETS / "timing-chain.svg").write_text(chain)
    print(f"wrote {ASSETS / 'timing-window.svg'} and {ASSETS / 'timing-chain.svg'}")


if __name__ == "__main__":
    main()

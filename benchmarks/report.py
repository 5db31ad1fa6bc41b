"""Prints a Markdown table of a saved benchmark run (for docs/performance.md).

Usage::

    python benchmarks/report.py benchmarks/results/<machine>/<run>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(path: Path) -> list[str]:
    """One table row per streaming benchmark of the run, in the order they ran."""
    run = json.loads(path.read_text())
    lines = []
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if "us_per_block" not in info:
            continue
        speedup = info.get("speedup_vs_0_0_2")
        baseline = info.get("baseline_us_per_block")
        lines.append(
            f"| {info['name']} | {info['device']} | {info['block']} | {info['us_per_block']:.1f} "
            f"| {'' if baseline is None else f'{baseline:.1f}'} "
            f"| {'' if speedup is None else f'{speedup:.2f}x'} "
            f"| {info['ratio_vs_offline']:.2f} |"
        )
    return lines


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(
        "| network / layer | device | block | torchstreamer µs/block | 0.0.2 µs/block "
        "| speedup | vs offline |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows(Path(arguments[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

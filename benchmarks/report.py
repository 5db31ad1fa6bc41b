"""Prints Markdown tables of a saved benchmark run (for docs/performance.md).

Usage::

    python benchmarks/report.py benchmarks/results/<machine>/<run>.json

The first table has every streaming benchmark; the second, the networks under TorchScript.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _streaming(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The extra information of each streaming benchmark, in the order they ran."""
    return [b["extra_info"] for b in run["benchmarks"] if "us_per_block" in b["extra_info"]]


def main_table(infos: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| network / layer | device | block | torchstreamer µs/block | 0.0.2 µs/block "
        "| speedup | vs offline | module alone µs/block |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for info in infos:
        lines.append(
            f"| {info['name']} | {info['device']} | {info['block']} "
            f"| {_us(info['us_per_block'])} | {_us(info.get('baseline_us_per_block'))} "
            f"| {_ratio(info.get('speedup_vs_0_0_2'))} | {info['ratio_vs_offline']:.2f} "
            f"| {_us(info.get('module_alone_us_per_block'))} |"
        )
    return lines


def scripted_table(infos: list[dict[str, Any]]) -> list[str]:
    rows = [info for info in infos if "ours_scripted_us_per_block" in info]
    if not rows:
        return []
    lines = [
        "| network | device | block | torchstreamer µs/block | scripted | 0.0.2 scripted "
        "| speedup, both scripted |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for info in rows:
        ours = info["ours_scripted_us_per_block"]
        theirs = info.get("0_0_2_scripted_us_per_block")
        lines.append(
            f"| {info['name']} | {info['device']} | {info['block']} "
            f"| {_us(info['us_per_block'])} | {_us(ours)} | {_us(theirs)} "
            f"| {_ratio(None if theirs is None else theirs / ours)} |"
        )
    return lines


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    infos = _streaming(json.loads(Path(arguments[0]).read_text()))
    print("\n".join(main_table(infos)))
    scripted = scripted_table(infos)
    if scripted:
        print()
        print("\n".join(scripted))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

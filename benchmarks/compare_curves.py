#!/usr/bin/env python3
"""Overlay the closed-loop success of several training runs' checkpoints in one plot.

Each run is ``LABEL=FILE``, FILE a ``learning_curve.json`` (benchmarks/learning_curve.py) or a
``checkpoint_selection.json`` (select_checkpoint): both hold one row per checkpoint with
``step`` and ``success_rate``. Runs that share data (e.g. the same dataset with and without a
setting) get the same colour when their labels share the text before the first comma; in
such a group the first run is drawn dashed, the others solid.

    python benchmarks/compare_curves.py --output docs/dropout.png \\
        "d6, dropout 0=/tmp/exp/lc6/learning_curve.json" "d6, dropout 0.1=/tmp/exp/do1/checkpoint_selection.json"

Prints the table it plots (success % per step) as Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_run(spec: str) -> tuple[str, list[tuple[int, float]], list[int]]:
    """'LABEL=FILE' -> (label, [(step, success 0..1)], seeds)."""
    label, sep, file = spec.partition("=")
    if not sep or not label or not file:
        raise ValueError(f"run {spec!r}: expected LABEL=FILE")
    data = json.loads(Path(file).read_text())
    rows = sorted((int(r["step"]), float(r["success_rate"])) for r in data["rows"])
    if not rows:
        raise ValueError(f"run {label!r}: {file} has no checkpoint rows")
    return label, rows, [int(s) for s in data.get("seeds", [])]


def markdown_table(runs: list[tuple[str, list[tuple[int, float]], list[int]]]) -> str:
    steps = sorted({s for _, rows, _ in runs for s, _ in rows})
    lines = ["| run | seeds | " + " | ".join(str(s) for s in steps) + " |",
             "|---|---|" + "---|" * len(steps)]
    for label, rows, seeds in runs:
        by_step = dict(rows)
        seed_text = f"{seeds[0]}–{seeds[-1]}" if seeds else "?"
        cells = [f"{100 * by_step[s]:.0f} %" if s in by_step else "" for s in steps]
        lines.append(f"| {label} | {seed_text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs, output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def group_of(label: str) -> str:
        return label.split(",")[0].strip()

    sizes: dict[str, int] = {}
    for label, _, _ in runs:
        sizes[group_of(label)] = sizes.get(group_of(label), 0) + 1
    colours: dict[str, str] = {}
    seen: dict[str, int] = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(9, 4))
    for label, rows, _ in runs:
        group = group_of(label)
        colour = colours.setdefault(group, palette[len(colours) % len(palette)])
        seen[group] = seen.get(group, 0) + 1
        style = "--" if seen[group] == 1 and sizes[group] > 1 else "-"
        ax.plot([s for s, _ in rows], [100 * v for _, v in rows], style, marker="o", color=colour, label=label)
    ax.set_xlabel("training step (updates)")
    ax.set_ylabel("success on unseen seeds (%)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=FILE")
    ap.add_argument("--output", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", default="closed-loop success per checkpoint")
    args = ap.parse_args(argv)
    try:
        runs = [load_run(r) for r in args.runs]
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"compare_curves: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(runs))
    plot(runs, args.output, args.title)
    print(f"plot: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

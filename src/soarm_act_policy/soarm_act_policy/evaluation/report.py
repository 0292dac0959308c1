"""Evaluation results -> JSON report + PNG plot (ROS-free).

The report (``eval_report.json``) holds the run's settings, the success rate, the rate of
each task stage (reached / grasped / placed / released, the sim task's
``EpisodeEvent.STAGE_*`` bits) and, per episode: seed, success, stages reached, time to
success, policy inference latency stats (from ``policy_status``), skipped control steps.
The plot (``eval_report.png``) shows success per episode, the stage rates, the joint
trajectories of one episode and the inference latency histogram.
Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPORT_JSON = "eval_report.json"
REPORT_PNG = "eval_report.png"
#: Task stages (name, bit) in task order: soarm_msgs/EpisodeEvent STAGE_* (the driver's
#: soarm_driver.sim.stages; test_evaluate_report.py holds them equal to the message's).
STAGES: tuple[tuple[str, int], ...] = (("reached", 1), ("grasped", 2), ("placed", 4), ("released", 8))


def stage_names(bits: int | None) -> list[str]:
    """Names of the stages set in `bits` (task order); [] for None (unknown)."""
    return [name for name, bit in STAGES if bits is not None and int(bits) & bit]


def stage_rates(stages: list[int | None]) -> dict | None:
    """{stage name: fraction of the episodes that reached it} over the episodes whose stages
    are known (not None); None when no episode's stages are known (e.g. a real arm)."""
    known = [int(b) for b in stages if b is not None]
    if not known:
        return None
    return {name: sum(1 for b in known if b & bit) / len(known) for name, bit in STAGES}


def format_stage_rates(rates: dict | None) -> str:
    """'reached 80 %, grasped 40 %, placed 20 %, released 20 %' (or 'unknown')."""
    if not rates:
        return "unknown"
    return ", ".join(f"{name} {100 * rate:.0f} %" for name, rate in rates.items())


@dataclass
class EpisodeResult:
    index: int  # evaluation episode number, 0..N-1
    seed: int
    episode_index: int = -1  # the driver's episode index
    task: str = ""
    success: bool = False
    #: the run_policy outcome: success, failure, timeout, canceled, aborted, rejected ("" without a result)
    outcome: str = ""
    time_to_success: float | None = None  # s after the policy was enabled (node clock)
    duration: float = 0.0  # s the policy ran (node clock)
    latency: dict = field(default_factory=dict)  # inference latency stats, s
    skipped: dict = field(default_factory=dict)  # skipped control steps during the episode
    control_steps: int = 0
    #: task stages reached (EpisodeEvent STAGE_* bits, OR-ed); None when the driver cannot tell
    stages: int | None = None
    #: times a human took over, and seconds under human control (RunPolicy result)
    interventions: int = 0
    human_time: float = 0.0
    error: str | None = None
    # not written to JSON: for the plot
    trajectory_t: list = field(default_factory=list, repr=False)
    trajectory_q: list = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("trajectory_t")
        d.pop("trajectory_q")
        d["stage_names"] = stage_names(self.stages)
        return d


def latency_stats(values: list[float]) -> dict:
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        return {"count": 0}

    def pct(p):
        k = (len(vals) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)

    return {
        "count": len(vals),
        "mean": sum(vals) / len(vals),
        "median": pct(0.5),
        "p95": pct(0.95),
        "max": vals[-1],
    }


def summarize(episodes: list[EpisodeResult], all_latencies: list[float], settings: dict) -> dict:
    n = len(episodes)
    successes = [e for e in episodes if e.success]
    times = [e.time_to_success for e in successes if e.time_to_success is not None]
    skipped_total: dict[str, int] = {}
    for e in episodes:
        for k, v in e.skipped.items():
            skipped_total[k] = skipped_total.get(k, 0) + int(v)
    known = [e.stages for e in episodes if e.stages is not None]
    return {
        "num_episodes": n,
        "successes": len(successes),
        "success_rate": (len(successes) / n) if n else 0.0,
        # fraction of the episodes with known stages that reached each stage (None: unknown)
        "stage_rates": stage_rates(known),
        "stage_episodes": len(known),
        "mean_time_to_success": (sum(times) / len(times)) if times else None,
        "latency": latency_stats(all_latencies),
        "skipped_total": skipped_total,
        "interventions": sum(e.interventions for e in episodes),
        "human_time": sum(e.human_time for e in episodes),
        "episodes_with_interventions": sum(1 for e in episodes if e.interventions),
        "errors": sum(1 for e in episodes if e.error),
        "settings": settings,
        "episodes": [e.to_json() for e in episodes],
    }


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(report: dict, path: Path) -> Path:
    _atomic_write_bytes(path, (json.dumps(report, indent=2) + "\n").encode())
    return path


def write_plot(episodes: list[EpisodeResult], all_latencies: list[float], joint_names, path: Path,
               title: str = "") -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    ax = axes[0]
    idx = [e.index for e in episodes]
    colors = ["tab:green" if e.success else "tab:red" for e in episodes]
    heights = [e.time_to_success if e.success and e.time_to_success is not None else e.duration for e in episodes]
    ax.bar(idx, heights, color=colors)
    ax.set_xticks(idx)
    ax.set_xlabel("episode")
    ax.set_ylabel("time to success (green) / episode time (red), s")
    n_ok = sum(e.success for e in episodes)
    ax.set_title(f"success {n_ok}/{len(episodes)}")

    ax = axes[1]
    rates = stage_rates([e.stages for e in episodes])
    names = [name for name, _ in STAGES]
    values = [100 * rates[name] for name in names] if rates else [0.0] * len(names)
    bars = ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:purple", "tab:green"])
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.0f} %", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of episodes")
    ax.set_title("task stages reached" if rates else "task stages (unknown: not a sim task)")

    ax = axes[2]
    shown = next((e for e in episodes if e.success and e.trajectory_t), None) or next(
        (e for e in episodes if e.trajectory_t), None
    )
    if shown is not None:
        t0 = shown.trajectory_t[0]
        ts = [t - t0 for t in shown.trajectory_t]
        for j, name in enumerate(joint_names):
            ax.plot(ts, [q[j] for q in shown.trajectory_q], label=name)
        ax.legend(fontsize=7, loc="best")
        ax.set_title(f"joint positions, episode {shown.index} ({'success' if shown.success else 'failure'})")
    else:
        ax.set_title("joint positions (no data)")
    ax.set_xlabel("time, s")
    ax.set_ylabel("rad")

    ax = axes[3]
    lat_ms = [v * 1000 for v in all_latencies if v is not None and math.isfinite(v)]
    if lat_ms:
        ax.hist(lat_ms, bins=30, color="tab:blue")
    ax.set_xlabel("inference latency, ms")
    ax.set_ylabel("count")
    ax.set_title(f"policy inference latency (n={len(lat_ms)})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    _atomic_write_bytes(path, buf.getvalue())
    return path

"""Replay, ROS-free: the recorded actions of a LeRobot dataset, timed windows, state error.

- `load_dataset` reads the `action` (and `observation.state`) columns of the chosen episodes
  of any LeRobot v3 dataset, maps them **by joint name** (`shoulder_pan.pos`, ...) onto the
  SO-101 joints and converts them to radians (`units.JointUnits`); with each episode its scene
  seed, task and recorded outcome from the per-episode metadata (`conversion.episode_meta`).
- `Timeline` / `WindowSchedule`: dataset frame k is due at `origin + k/fps` on the driver's
  clock. Each published JointTrajectory is stamped at the time its first point is due and
  holds the following frames at 1/fps spacing; a new window goes out every publish period
  and reaches `window` frames ahead, so the driver never runs off the end of what was published.
- `state_error`: the replayed joint states, resampled at the frame times, against the
  recorded `observation.state`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..joints import JOINT_NAMES
from ..units import UNITS, JointUnits

ACTION, STATE = "action", "observation.state"
#: Suffix LeRobot gives joint positions in feature names (`shoulder_pan.pos`).
POS_SUFFIX = ".pos"
UNITS_CHOICES = ("auto", *UNITS)
#: |value| above which a dataset cannot be in radians (joint ranges are within +-2.9 rad)
RADIANS_MAX = 3.5


class ReplayError(RuntimeError):
    """The dataset cannot be replayed (missing joints, unknown units, no such episode)."""


# ---------------------------------------------------------------------------- dataset
def feature_names(feature: Mapping) -> list[str]:
    """A LeRobot feature's per-element names: a list, or {"motors": [...]} (older datasets)."""
    names = feature.get("names")
    if isinstance(names, Mapping):
        names = next(iter(names.values()), None) if len(names) == 1 else None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return []
    return list(names)


def joint_columns(names: Sequence[str], joints: Sequence[str] = JOINT_NAMES, what: str = ACTION) -> np.ndarray:
    """Column of each joint in a feature whose names are `<joint>.pos` (or `<joint>`).

    Raises ReplayError naming what is missing; extra names (other motors) are ignored.
    """
    index = {}
    for i, n in enumerate(names):
        base = n[: -len(POS_SUFFIX)] if n.endswith(POS_SUFFIX) else n
        index.setdefault(base, i)
    missing = [j for j in joints if j not in index]
    if missing:
        raise ReplayError(f"feature {what!r} has no column for joints {missing} (its names: {list(names)}; "
                          f"expected '<joint>{POS_SUFFIX}' for {list(joints)})")
    return np.array([index[j] for j in joints], dtype=np.intp)


def guess_units(actions: np.ndarray, ours: bool) -> tuple[str, str]:
    """(units, why) of a dataset's joint values (columns in JOINT_NAMES order)."""
    if ours:
        return "radians", "written by bag_to_lerobot (soarm/* episode columns)"
    peak = float(np.nanmax(np.abs(actions))) if actions.size else 0.0
    if peak <= RADIANS_MAX:
        return "radians", f"all |action| <= {RADIANS_MAX} (max {peak:.3g})"
    return "lerobot_degrees", (f"|action| up to {peak:.3g}: LeRobot SO-101 units (degrees, gripper 0..100); "
                               "pass --units lerobot_range100 for datasets recorded with use_degrees=False")


@dataclass
class ReplayEpisode:
    index: int  # dataset episode_index
    actions: np.ndarray  # (N, 6) rad, JOINT_NAMES order
    states: np.ndarray | None  # (N, 6) rad, or None when the dataset has no usable state
    seed: int = -1  # scene seed from the episode metadata, -1 unknown
    task: str = ""
    recorded_outcome: str = ""  # "success" | "failure" | "" (unknown)
    recorded_stages: int = -1
    start_offset_s: float = 0.0  # first frame's time after STARTED in the recording

    @property
    def frames(self) -> int:
        return len(self.actions)


@dataclass
class ReplayDataset:
    repo_id: str
    root: str
    fps: float
    units: str
    units_reason: str
    episodes: list[ReplayEpisode]
    total_episodes: int = 0
    warnings: list[str] = field(default_factory=list)


def _episode_list(requested: Sequence[int] | None, total: int) -> list[int]:
    if not requested:
        return list(range(total))
    bad = [e for e in requested if not 0 <= e < total]
    if bad:
        raise ReplayError(f"episodes {bad} do not exist (the dataset has episodes 0..{total - 1})")
    return list(dict.fromkeys(int(e) for e in requested))


def load_dataset(repo_id: str, root: str | Path | None = None, episodes: Sequence[int] | None = None,
                 units: str = "auto", joint_ranges: Mapping[str, tuple[float, float]] | None = None) -> ReplayDataset:
    """Actions (rad), states (rad) and metadata of the chosen episodes (all when None/empty)."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from ..conversion.episode_meta import read_episode_columns

    if units not in UNITS_CHOICES:
        raise ReplayError(f"units must be one of {', '.join(UNITS_CHOICES)}; got {units!r}")
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    feats = meta.features
    if ACTION not in feats:
        raise ReplayError(f"dataset {repo_id} has no {ACTION!r} feature (it has {sorted(feats)})")
    a_cols = joint_columns(feature_names(feats[ACTION]), what=ACTION)
    warnings = []
    s_cols = None
    if STATE in feats:
        try:
            s_cols = joint_columns(feature_names(feats[STATE]), what=STATE)
        except ReplayError as exc:
            warnings.append(f"no state comparison: {exc}")
    else:
        warnings.append(f"no state comparison: the dataset has no {STATE!r}")
    chosen = _episode_list(episodes, meta.total_episodes)
    ds = LeRobotDataset(repo_id, root=meta.root, episodes=chosen, download_videos=False)
    cols = ["episode_index", "frame_index", ACTION] + ([STATE] if s_cols is not None else [])
    data = ds.hf_dataset.select_columns(cols).with_format("numpy")[:]
    ep_idx = np.asarray(data["episode_index"]).astype(np.int64)
    frame_idx = np.asarray(data["frame_index"]).astype(np.int64)
    acts = np.stack(data[ACTION]).astype(np.float64)[:, a_cols]
    states = np.stack(data[STATE]).astype(np.float64)[:, s_cols] if s_cols is not None else None

    epcols = read_episode_columns(meta.root)
    ours = _has_soarm_columns(meta.root)
    chosen_units, why = (units, "--units") if units != "auto" else guess_units(acts, ours)
    conv = JointUnits(chosen_units, JOINT_NAMES, joint_ranges)
    out = []
    for e in chosen:
        sel = np.flatnonzero(ep_idx == e)
        sel = sel[np.argsort(frame_idx[sel], kind="stable")]
        if len(sel) == 0:
            raise ReplayError(f"episode {e} has no frames")
        row = epcols.get(e, {})
        tasks = row.get("tasks") or []
        out.append(ReplayEpisode(
            index=e, actions=conv.to_radians(acts[sel]),
            states=None if states is None else conv.to_radians(states[sel]),
            seed=int(row.get("soarm/seed", -1)), task=str(tasks[0]) if tasks else "",
            recorded_outcome=str(row.get("soarm/outcome", "")), recorded_stages=int(row.get("soarm/stages", -1)),
            start_offset_s=float(row.get("soarm/start_offset_s", 0.0))))
    return ReplayDataset(repo_id, str(meta.root), float(meta.fps), chosen_units, why, out,
                         int(meta.total_episodes), warnings)


def _has_soarm_columns(root: str | Path) -> bool:
    import pyarrow.parquet as pq

    from ..conversion.episode_meta import COLUMNS, episode_files

    files = episode_files(root)
    return bool(files) and all(c in pq.read_schema(files[0]).names for c in COLUMNS)


# ---------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timeline:
    """Dataset frame k of an episode is due at `origin + k / fps` (driver clock, s)."""

    origin: float
    fps: float
    frames: int

    def time(self, k: int | np.ndarray) -> float | np.ndarray:
        return self.origin + np.asarray(k) / self.fps if isinstance(k, np.ndarray) else self.origin + k / self.fps

    @property
    def end(self) -> float:
        return self.time(self.frames - 1)

    def next_due(self, now: float) -> int:
        """First frame due strictly after `now` (== frames when none is)."""
        k = math.floor((now - self.origin) * self.fps + 1e-9) + 1
        return int(min(max(k, 0), self.frames))


@dataclass
class Window:
    """One JointTrajectory: frames [first, first+len) stamped at `stamp`, point j at times[j]."""

    stamp: float  # header.stamp, driver clock (s)
    first: int  # dataset frame of the first point
    positions: np.ndarray  # (M, 6) rad
    times_from_start: np.ndarray  # (M,) s

    @property
    def end_time(self) -> float:
        return self.stamp + float(self.times_from_start[-1])


def make_window(actions: np.ndarray, timeline: Timeline, first: int, size: int,
                stamp: float | None = None) -> Window:
    """Frames [first, first+size) (clipped at the end); stamped at `stamp` (default: frame
    `first`'s due time, so the first point has time_from_start 0)."""
    last = min(first + size, timeline.frames)
    if last <= first:
        raise ValueError(f"empty window at frame {first} of {timeline.frames}")
    t = timeline.time(np.arange(first, last))
    stamp = float(t[0]) if stamp is None else float(stamp)
    tfs = t - stamp
    if tfs[0] < -1e-9:
        raise ValueError("a window is never stamped after its first point")
    return Window(stamp, first, np.asarray(actions[first:last], dtype=np.float64), np.maximum(tfs, 0.0))


class WindowSchedule:
    """When to publish which window while one episode plays.

    The first window starts at frame 0, stamped at `first_stamp` (<= frame 0's due time:
    the episode's STARTED time, the arm then moves from where it is to frame 0 by frame 0's
    due time, as it did in the recording before its first frame, plus any lead-in). Afterwards, every
    `period` s, a window from the first frame due after now, stamped at that frame's due
    time, `size` frames long. Publishing ends once fewer than two frames are still ahead
    (the last window already holds them).
    """

    def __init__(self, actions: np.ndarray, timeline: Timeline, size: int, period: float,
                 first_stamp: float | None = None):
        if size < 2:
            raise ValueError("a window holds at least 2 frames")
        if period <= 0:
            raise ValueError("the publish period must be > 0")
        self.actions = actions
        self.timeline = timeline
        self.size = size
        self.period = period
        self.first_stamp = timeline.time(0) if first_stamp is None else min(first_stamp, timeline.time(0))
        self.last_publish: float | None = None
        self.finished = timeline.frames < 1
        self.published: list[Window] = []

    def poll(self, now: float) -> Window | None:
        """The window to publish at `now`, or None (not yet, or finished)."""
        if self.finished:
            return None
        if self.last_publish is None:
            w = make_window(self.actions, self.timeline, 0, self.size, self.first_stamp)
        else:
            if now - self.last_publish < self.period - 1e-9:
                return None
            k = self.timeline.next_due(now)
            if self.timeline.frames - k < 2:
                self.finished = True
                return None
            w = make_window(self.actions, self.timeline, k, self.size)
        self.last_publish = now
        self.published.append(w)
        return w


def lead_in_time(current: np.ndarray | None, first: np.ndarray, speed: float, tolerance: float,
                 available: float = 0.0) -> float:
    """Extra seconds before the first frame so that the arm moves from `current` to it at no
    more than `speed` rad/s (fastest joint), given `available` s before the frame is due
    anyway (the recorded first frame's offset after STARTED); 0 when already within
    `tolerance` rad (our datasets start at the driver's home pose)."""
    if current is None or speed <= 0:
        return 0.0
    d = float(np.max(np.abs(np.asarray(first, float) - np.asarray(current, float))))
    return 0.0 if d <= tolerance else max(0.0, d / speed - max(available, 0.0))


# ---------------------------------------------------------------------------- comparison
@dataclass
class StateError:
    rms: list[float]  # per joint, rad
    max_abs: list[float]  # per joint, rad
    frames: int  # frames compared


def state_error(frame_times: np.ndarray, recorded: np.ndarray, t: Sequence[float],
                q: Sequence[Sequence[float]]) -> StateError | None:
    """Replayed joint states (t, q) linearly resampled at `frame_times`, minus the recorded
    states; frames outside the replayed samples' time span are left out."""
    t = np.asarray(t, dtype=np.float64)
    if len(t) < 2:
        return None
    q = np.asarray(q, dtype=np.float64).reshape(len(t), -1)
    order = np.argsort(t, kind="stable")
    t, q = t[order], q[order]
    keep = (frame_times >= t[0]) & (frame_times <= t[-1])
    if not keep.any():
        return None
    ft = np.asarray(frame_times)[keep]
    got = np.stack([np.interp(ft, t, q[:, j]) for j in range(q.shape[1])], axis=1)
    err = got - np.asarray(recorded, dtype=np.float64)[keep]
    return StateError([float(v) for v in np.sqrt(np.mean(err**2, axis=0))],
                      [float(v) for v in np.max(np.abs(err), axis=0)], int(keep.sum()))


# ---------------------------------------------------------------------------- report
STAGE_NAMES = ("reached", "grasped", "placed", "released")


def stage_names(bits: int | None) -> list[str]:
    if bits is None or bits < 0:
        return []
    return [n for i, n in enumerate(STAGE_NAMES) if bits & (1 << i)]


@dataclass
class ReplayResult:
    dataset_episode: int
    seed: int  # seed used for the reset (-1: none known, the driver chose)
    task: str = ""
    frames: int = 0
    driver_episode_index: int = -1
    success: bool = False
    time_to_success: float | None = None  # s after STARTED
    stages: int | None = None  # STAGE_* bits from the driver's events, None when none carried them
    recorded_outcome: str = ""
    recorded_stages: int = -1
    lead_in_s: float = 0.0
    duration_s: float = 0.0  # played, s of driver clock (lead-in + frames)
    windows: int = 0
    joint_states: int = 0  # samples received while playing
    state_rms: list[float] | None = None  # per joint, rad
    state_max_abs: list[float] | None = None
    state_frames: int = 0
    error: str | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["stage_names"] = stage_names(self.stages)
        if self.state_rms is not None:
            d["state_rms"] = dict(zip(JOINT_NAMES, (round(v, 6) for v in self.state_rms)))
            d["state_max_abs"] = dict(zip(JOINT_NAMES, (round(v, 6) for v in self.state_max_abs or [])))
        return d


def summarize(results: Sequence[ReplayResult], dataset: ReplayDataset, settings: dict) -> dict:
    n = len(results)
    ok = [r for r in results if r.success]
    with_state = [r for r in results if r.state_rms is not None]
    rms_all = None
    if with_state:
        # RMS over every compared frame of every episode, per joint
        num = np.zeros(len(JOINT_NAMES))
        den = 0
        for r in with_state:
            num += np.asarray(r.state_rms) ** 2 * r.state_frames
            den += r.state_frames
        rms_all = dict(zip(JOINT_NAMES, (round(float(v), 6) for v in np.sqrt(num / max(den, 1)))))
    stage_counts = {name: sum(1 for r in results if r.stages is not None and r.stages & (1 << i))
                    for i, name in enumerate(STAGE_NAMES)}
    return {
        "repo_id": dataset.repo_id,
        "root": dataset.root,
        "fps": settings.get("fps") or dataset.fps,
        "units": dataset.units,
        "units_reason": dataset.units_reason,
        "num_episodes": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "recorded_successes": sum(1 for r in results if r.recorded_outcome == "success"),
        "stage_counts": stage_counts,
        "state_rms": rms_all,
        "state_rms_max": (max(max(r.state_rms) for r in with_state) if with_state else None),
        "errors": sum(1 for r in results if r.error),
        "warnings": list(dataset.warnings),
        "settings": settings,
        "episodes": [r.to_json() for r in results],
    }


def format_table(results: Sequence[ReplayResult]) -> str:
    short = ("pan", "lift", "elbow", "wflex", "wroll", "grip")
    head = (f"{'ep':>4} {'seed':>6} {'result':>8} {'t_succ':>6} {'stages':>7} {'recorded':>8}  "
            + " ".join(f"{s:>6}" for s in short) + "   (state RMS, mrad)")
    lines = [head]
    for r in results:
        res = "ERROR" if r.error else ("success" if r.success else "failure")
        tts = f"{r.time_to_success:6.2f}" if r.time_to_success is not None else f"{'-':>6}"
        st = f"{r.stages:7d}" if r.stages is not None else f"{'-':>7}"
        rms = (" ".join(f"{v * 1000:6.1f}" for v in r.state_rms) if r.state_rms is not None
               else " ".join(f"{'-':>6}" for _ in short))
        lines.append(f"{r.dataset_episode:>4} {r.seed:>6} {res:>8} {tts} {st} {r.recorded_outcome or '-':>8}  {rms}"
                     + (f"   {r.error}" if r.error else ""))
    return "\n".join(lines)

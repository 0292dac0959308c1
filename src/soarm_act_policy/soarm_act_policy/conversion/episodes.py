"""Episodes of a bag: splitting by episode_events, time alignment and the quality report.

Everything here works on the first-pass data (extract.BagData); no pixels are touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import align, corrections
from ..events import ENDED, EVENT_NAMES, FAILURE, RESET, STARTED, SUCCESS
from .extract import BagData, ImageStream, JointStream
from .options import Options

NS = 1e-9
#: custom_data key of the task text in bags written by the recorder.
TASK_KEY = "soarm.task"


@dataclass
class Segment:
    start_ns: int | None
    end_ns: int | None
    task: str | None
    source_episode_index: int | None
    ended_by: str
    outcome: str | None = None
    #: scene seed (the STARTED event's), -1 when unknown
    seed: int = -1
    #: STAGE_* bits OR-ed over the episode's SUCCESS/FAILURE/ENDED events; None when unknown
    stages: int | None = None
    #: human correction windows [(start_ns, end_ns or None)] (conversion.corrections)
    interventions: list = field(default_factory=list)


@dataclass
class Problem:
    kind: str
    topic: str | None
    detail: str
    #: The episode cannot be converted at all (skipped even with --on-problem warn).
    fatal: bool = False

    def as_dict(self) -> dict:
        return {"kind": self.kind, "topic": self.topic, "detail": self.detail, "fatal": self.fatal}

    def __str__(self) -> str:
        return f"{self.kind}" + (f" on {self.topic}" if self.topic else "") + f": {self.detail}"


@dataclass
class BagEpisode:
    bag: Path
    segment_index: int
    segment: Segment
    task: str | None
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    state: np.ndarray | None = None
    action: np.ndarray | None = None
    #: camera -> receive-order index (in the bag) of the frame for each grid time
    image_index: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    streams: dict[str, dict] = field(default_factory=dict)
    #: planned (selected, not written yet: what a --dry-run report shows) | written | kept_with_warnings | skipped
    status: str = "planned"
    dataset_episode_index: int | None = None
    #: per grid frame: a human was in control (the dataset's `intervention` feature)
    intervention: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    #: --frames corrections: index of the correction window this episode holds (None: the whole episode)
    window: int | None = None

    @property
    def frames(self) -> int:
        return len(self.grid)

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    @property
    def name(self) -> str:
        return f"{self.bag.name}#{self.segment_index}" + ("" if self.window is None else f".{self.window}")

    @property
    def start_offset_s(self) -> float:
        """First frame's time after the episode's STARTED event (s); 0 without one."""
        if not len(self.grid) or self.segment.start_ns is None:
            return 0.0
        return float((int(self.grid[0]) - self.segment.start_ns) * NS)

    def report(self, fps: int) -> dict:
        g = self.grid
        return {
            "bag": str(self.bag),
            "segment": self.segment_index,
            "correction_window": self.window,
            "intervention_frames": int(np.sum(self.intervention)),
            "status": self.status,
            "dataset_episode_index": self.dataset_episode_index,
            "source_episode_index": self.segment.source_episode_index,
            "task": self.task,
            "outcome": self.segment.outcome,
            "seed": self.segment.seed,
            "stages": self.segment.stages,
            "ended_by": self.segment.ended_by,
            "start_stamp_s": float(g[0] * NS) if len(g) else None,
            "start_offset_s": round(self.start_offset_s, 9),
            "duration_s": float((g[-1] - g[0]) * NS + 1.0 / fps) if len(g) else 0.0,
            "frames": int(len(g)),
            "streams": self.streams,
            "problems": [p.as_dict() for p in self.problems],
        }


def split_segments(data: BagData, opts: Options) -> list[Segment]:
    """Episodes inside a bag: STARTED .. ENDED/RESET/next STARTED, or the whole bag."""
    events = sorted(data.events, key=lambda e: e.stamp_ns)
    starts = [e for e in events if e.kind == STARTED]
    mode = opts.split
    if mode == "auto":
        mode = "events" if starts else "bag"
    fallback_task = data.custom_data.get(TASK_KEY) or opts.task
    if mode == "bag" or not starts:
        if mode == "events":
            from ..bags import BagError
            raise BagError(data.path, "--split events but the bag has no STARTED event",
                           topic=opts.topic(opts.events_topic))
        task = next((e.task for e in events if e.task), None) or fallback_task
        idx = next((e.episode_index for e in events), None)
        seg = Segment(None, None, task, idx, "end of bag")
        seg.outcome = _outcome(events)
        seg.seed = next((e.seed for e in events if e.seed >= 0), -1)
        seg.stages = _stages(events)
        seg.interventions = corrections.windows(events)
        return [seg]
    segs = []
    for s in starts:
        end = next((e for e in events if e.stamp_ns > s.stamp_ns and e.kind in (ENDED, RESET, STARTED)),
                   None)
        seg = Segment(s.stamp_ns, end.stamp_ns if end else None, s.task or fallback_task,
                      s.episode_index, EVENT_NAMES[end.kind] if end else "end of bag")
        inside = [e for e in events if e.stamp_ns >= s.stamp_ns and (end is None or e.stamp_ns <= end.stamp_ns)]
        seg.outcome = _outcome(inside)
        seg.seed = s.seed if s.seed >= 0 else next(
            (e.seed for e in inside if e.seed >= 0 and e.episode_index == s.episode_index), -1)
        seg.stages = _stages([e for e in inside if e.episode_index == s.episode_index])
        seg.interventions = corrections.windows(inside, s.episode_index)
        segs.append(seg)
    return segs


def _stages(events) -> int | None:
    """STAGE_* bits reached (OR over SUCCESS/FAILURE/ENDED events); None if none carries them."""
    bits = [e.stages for e in events if e.kind in (SUCCESS, FAILURE, ENDED) and e.stages is not None]
    if not bits:
        return None
    out = 0
    for b in bits:
        out |= b
    return out


def _outcome(events) -> str | None:
    kinds = [e.kind for e in events if e.kind in (SUCCESS, FAILURE)]
    if not kinds:
        return None
    return "success" if kinds[-1] == SUCCESS else "failure"


def _window(stamps: np.ndarray, seg: Segment) -> np.ndarray:
    keep = np.ones(len(stamps), dtype=bool)
    if seg.start_ns is not None:
        keep &= stamps >= seg.start_ns
    if seg.end_ns is not None:
        keep &= stamps <= seg.end_ns
    return np.flatnonzero(keep)


def _timing_stats(stamps_recv: np.ndarray) -> dict:
    """Stats of one stream's header stamps (receive order given)."""
    n = len(stamps_recv)
    backwards = int(np.sum(np.diff(stamps_recv) < 0)) if n > 1 else 0
    s = np.sort(stamps_recv)
    d = np.diff(s)
    out = {"messages": int(n), "rate_hz": None, "largest_gap_s": None, "backwards": backwards,
           "duplicated": int(np.sum(d == 0)), "dropped": 0}
    pos = d[d > 0]
    if len(pos):
        med = float(np.median(pos))
        out["rate_hz"] = round(1e9 / med, 3)
        out["largest_gap_s"] = round(float(d.max()) * NS, 6)
        big = pos[pos > 1.5 * med]
        out["dropped"] = int(np.sum(np.rint(big / med) - 1))
    return out


def _frozen(stream: ImageStream, idx: np.ndarray) -> tuple[float, int, int, int]:
    """Longest run of identical consecutive frames: (seconds, frames, first stamp, last stamp)."""
    order = idx[np.argsort(stream.stamps[idx], kind="stable")]
    best = (0.0, 0, 0, 0)
    run_start = 0
    for k in range(1, len(order) + 1):
        if k == len(order) or stream.digests[order[k]] != stream.digests[order[k - 1]]:
            if k - run_start > 1:
                a, b = int(stream.stamps[order[run_start]]), int(stream.stamps[order[k - 1]])
                if (b - a) * NS > best[0]:
                    best = ((b - a) * NS, k - run_start, a, b)
            run_start = k
    return best


#: Joint motion (rad) during identical frames that makes them a frozen camera. A static
#: arm in a static (simulated, noise-free) scene legitimately renders identical frames.
FROZEN_MOTION = 0.01


def _moved(js: JointStream, a: int, b: int) -> float:
    inside = (js.stamps >= a) & (js.stamps <= b)
    rows = js.positions[inside]
    rows = rows[~np.isnan(rows).any(axis=1)]
    return float(np.ptp(rows, axis=0).max()) if len(rows) > 1 else 0.0


def build_episode(data: BagData, seg: Segment, index: int, opts: Options) -> BagEpisode:
    """Time-align one episode and collect its quality report and problems."""
    ep = BagEpisode(data.path, index, seg, seg.task)
    if not ep.task:
        ep.problems.append(Problem("no_task", opts.topic(opts.events_topic),
                                   "no task text in the events or bag metadata; pass --task", True))
    joint_streams: list[tuple[str, JointStream]] = [("state", data.state), ("action", data.action)]
    sorted_streams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, js in joint_streams:
        idx = _window(js.stamps, seg)
        stats = _timing_stats(js.stamps[idx])
        rows = js.positions[idx]
        stats["missing_joints"] = sorted(js.missing_joints)
        stats["extra_joints"] = sorted(js.extra_joints)
        nan_rows = np.isnan(rows).any(axis=1)
        stats["nan"] = int(nan_rows.sum()) if not js.missing_joints else 0
        ep.streams[js.topic] = stats
        if js.missing_joints:
            ep.problems.append(Problem("joint_names", js.topic,
                                       f"joints {sorted(js.missing_joints)} missing from the messages "
                                       f"(expected {list(opts.joints)}, extra: {sorted(js.extra_joints)})",
                                       True))
            continue
        if stats["nan"]:
            ep.problems.append(Problem("nan", js.topic, f"{stats['nan']} messages with NaN positions "
                                       "(dropped before resampling)"))
        good = idx[~nan_rows]
        order = good[np.argsort(js.stamps[good], kind="stable")]
        sorted_streams[key] = (js.stamps[order], js.positions[order])
        _check_timing(ep, js.topic, stats, opts)
    image_sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for cam, st in data.cameras.items():
        idx = _window(st.stamps, seg)
        stats = _timing_stats(st.stamps[idx])
        stats.update({"width": st.width, "height": st.height, "encoding": st.encoding})
        frozen_s, frozen_n, fa, fb = _frozen(st, idx)
        moved = _moved(data.state, fa, fb) if frozen_n else 0.0
        stats["frozen_s"], stats["frozen_frames"] = round(frozen_s, 6), frozen_n
        stats["frozen_joint_motion"] = round(moved, 6)
        ep.streams[st.topic] = stats
        order = idx[np.argsort(st.stamps[idx], kind="stable")]
        image_sorted[cam] = (st.stamps[order], order)
        _check_timing(ep, st.topic, stats, opts)
        if frozen_s > opts.frozen_s and moved > FROZEN_MOTION:
            ep.problems.append(Problem("frozen_camera", st.topic,
                                       f"{frozen_n} identical frames over {frozen_s:.2f} s (limit "
                                       f"{opts.frozen_s} s) while the joints moved {moved:.3f} rad"))
    all_stamps = [s for s, _ in sorted_streams.values()] + [s for s, _ in image_sorted.values()]
    if ep.fatal:
        return ep
    if any(len(s) == 0 for s in all_stamps):
        empty = [t for t, st in ep.streams.items() if st["messages"] == 0]
        ep.problems.append(Problem("empty", ", ".join(empty), "no messages inside the episode", True))
        return ep
    t0 = max(int(s[0]) for s in all_stamps)
    t1 = min(int(s[-1]) for s in all_stamps)
    ep.grid = align.make_grid(t0, t1, opts.fps)
    ep.intervention = corrections.mask(ep.grid, seg.interventions)
    if len(ep.grid) < opts.min_frames:
        ep.problems.append(Problem("too_short", None, f"{len(ep.grid)} frames at {opts.fps} fps "
                                   f"(minimum {opts.min_frames}); streams overlap "
                                   f"{max(t1 - t0, 0) * NS:.3f} s", len(ep.grid) == 0))
        if len(ep.grid) == 0:
            return ep
    ep.state = align.resample(opts.state_rule, *sorted_streams["state"], ep.grid).astype(np.float32)
    ep.action = align.resample(opts.action_rule, *sorted_streams["action"], ep.grid).astype(np.float32)
    for cam, (stamps, order) in image_sorted.items():
        sel = align.newest_not_newer(stamps, ep.grid)
        ep.image_index[cam] = order[sel]
        ep.streams[data.cameras[cam].topic]["grid_repeats"] = int(np.sum(np.diff(sel) == 0))
    return ep


def _check_timing(ep: BagEpisode, topic: str, stats: dict, opts: Options) -> None:
    if stats["messages"] > 1 and stats["rate_hz"] is None:
        ep.problems.append(Problem("no_stamps", topic, f"all {stats['messages']} messages carry the same "
                                   "header stamp: the publisher does not stamp its messages", True))
        return
    if stats["backwards"]:
        ep.problems.append(Problem("timestamps_backwards", topic,
                                   f"header stamps go backwards {stats['backwards']} times "
                                   "(messages are sorted by stamp when kept)"))
    if stats["largest_gap_s"] is not None and stats["largest_gap_s"] > opts.max_gap_s:
        ep.problems.append(Problem("gap", topic, f"largest gap {stats['largest_gap_s']:.3f} s "
                                   f"(limit {opts.max_gap_s} s)"))


def bag_episodes(data: BagData, opts: Options) -> list[BagEpisode]:
    """The bag's episodes; with `opts.frames` "corrections", one per correction window
    instead (episodes without one are left out; those that cannot be aligned stay, with their problems)."""
    episodes = [build_episode(data, seg, i, opts) for i, seg in enumerate(split_segments(data, opts))]
    if opts.frames == "corrections":
        episodes = [c for p in episodes for c in (corrections.correction_episodes(p) if len(p.grid) else [p])]
    return episodes

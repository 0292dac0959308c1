"""The replay client: an rclpy node that plays dataset episodes through the driver.

Built on the evaluation client (`evaluation.client.EvalClient`: service calls that wait for
the server and settle, the /clock wait, `episode_events` and `joint_states` collection);
it adds the `joint_trajectory` publisher and the per-episode sequence:
`reset_episode` (the episode's seed, randomize) -> STARTED -> windows of recorded actions
timed from STARTED (`core.WindowSchedule`) -> hold -> result (SUCCESS event, stages, state
error against `observation.state`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from soarm_msgs.msg import EpisodeEvent
from soarm_msgs.srv import ResetEpisode

from ..evaluation.client import EvalClient, EvalSettings, EvaluationError
from ..joints import JOINT_NAMES
from ..ros_support import duration_msg, time_msg, time_seconds
from .core import ReplayEpisode, ReplayResult, Timeline, Window, WindowSchedule, lead_in_time, state_error

TRAJECTORY_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Event kinds whose `stages` field tells the stages an episode reached.
STAGE_EVENTS = (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.ENDED)


@dataclass
class ReplaySettings:
    fps: float | None = None  # None: the dataset's
    window: float = 1.0  # s of frames per published trajectory
    publish_rate: float = 10.0  # windows per second
    hold_time: float = 1.0  # s after the last frame to wait for SUCCESS
    lead_in_speed: float = 0.5  # rad/s to the first frame when the arm is elsewhere
    lead_in_tolerance: float = 0.05  # rad: closer than this, no lead-in
    seed: int = -1  # reset seed for episodes without one (-1: the driver picks)
    randomize: bool = True
    task: str = ""  # "" = the episode's task
    use_sim_time: str = "auto"  # auto | on | off
    enable_driver: bool = True
    service_timeout: float = 30.0
    reset_time: float = 60.0
    publish_failure: bool = True


def trajectory_msg(w: Window) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp = time_msg(w.stamp)
    msg.joint_names = list(JOINT_NAMES)
    msg.points = [JointTrajectoryPoint(positions=[float(v) for v in q], time_from_start=duration_msg(max(t, 0.0)))
                  for q, t in zip(w.positions, w.times_from_start)]
    return msg


class ReplayClient(EvalClient):
    def __init__(self, settings: ReplaySettings, args: list[str] | None = None):
        self.r = settings
        sim = settings.use_sim_time == "on"
        super().__init__(EvalSettings(use_sim_time=sim, enable_driver=settings.enable_driver,
                                      service_timeout=settings.service_timeout, reset_time=settings.reset_time,
                                      seed=settings.seed, randomize=settings.randomize),
                         node_name="replay", args=args)
        self.pub_traj = self.node.create_publisher(JointTrajectory, "joint_trajectory", TRAJECTORY_QOS)

    def log(self, text: str):
        print(f"[replay] {text}", flush=True)

    # ------------------------------------------------------------------ set-up
    def prepare(self):
        """Wait for the driver; with --use-sim-time auto follow /clock when the driver publishes it."""
        if not self.cli_reset.wait_for_service(timeout_sec=self.s.service_timeout):
            raise EvaluationError(f"service {self.cli_reset.srv_name} not available: is the driver running?")
        if self.r.use_sim_time == "auto":
            deadline = time.monotonic() + 3.0
            while self.node.count_publishers("/clock") == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.node.count_publishers("/clock") > 0:
                self.node.set_parameters([Parameter("use_sim_time", Parameter.Type.BOOL, True)])
                self.s.use_sim_time = True
                self.log("the driver publishes /clock: using sim time")
            else:
                self.log("no /clock publisher: using the system clock")
        super().prepare()

    # ------------------------------------------------------------------ helpers
    def _events_of(self, episode_index: int, since_wall: float) -> list[EpisodeEvent]:
        with self._lock:
            return [ev for arrival, ev in self._events if arrival >= since_wall and ev.episode_index == episode_index]

    def stages_of(self, episode_index: int, since_wall: float) -> int | None:
        """STAGE_* bits the episode reached: the driver's ~/status while it ran (followed by the
        evaluation client) OR-ed with its SUCCESS/FAILURE/ENDED events (None: nothing told)."""
        events = [ev for ev in self._events_of(episode_index, since_wall) if ev.kind in STAGE_EVENTS]
        return self.episode_stages(episode_index, *events)

    def _joints_since(self, t0: float) -> tuple[list[float], list[list[float]]]:
        with self._lock:
            pairs = [(t, q) for t, q in zip(self._traj_t, self._traj_q) if t >= t0]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    # ------------------------------------------------------------------ one episode
    def replay_episode(self, ep: ReplayEpisode, fps: float) -> tuple[ReplayResult, float]:
        """Reset to the episode's scene and play it; returns the result and the wall time of
        the reset call (events of this episode arrive after it)."""
        r = self.r
        seed = ep.seed if ep.seed >= 0 else r.seed
        res = ReplayResult(dataset_episode=ep.index, seed=seed, task=r.task or ep.task, frames=ep.frames,
                           recorded_outcome=ep.recorded_outcome, recorded_stages=ep.recorded_stages)
        since = time.monotonic()
        req = ResetEpisode.Request(task=res.task, seed=int(seed), randomize=r.randomize)
        resp = self._call(self.cli_reset, req, r.reset_time, f"reset for dataset episode {ep.index}")
        if not resp.success:
            res.error = f"reset failed: {resp.message}"
            return res, since
        res.driver_episode_index = int(resp.episode_index)
        res.seed = int(resp.seed_used)
        with self._lock:
            self._traj_t, self._traj_q = [], []
            self._recording = True
        try:
            started = None
            deadline = time.monotonic() + 10.0
            while started is None and time.monotonic() < deadline:
                started = self._find_event(res.driver_episode_index, EpisodeEvent.STARTED, since)
                time.sleep(0.005)
            if started is None:
                res.error = f"no STARTED event for driver episode {res.driver_episode_index} within 10 s"
                return res, since
            if started.task:
                res.task = started.task
            t_started = time_seconds(started.header.stamp)
            self._play(ep, fps, t_started, res, since)
        finally:
            with self._lock:
                self._recording = False
        success = self._find_event(res.driver_episode_index, EpisodeEvent.SUCCESS, since)
        if success is not None:
            res.success = True
            res.time_to_success = round(time_seconds(success.header.stamp) - t_started, 4)
        elif r.publish_failure and not res.error:
            ev = EpisodeEvent(episode_index=res.driver_episode_index, task=res.task, kind=EpisodeEvent.FAILURE,
                              detail="replay: no success by the end of the recorded actions")
            if hasattr(ev, "seed"):
                ev.seed = int(res.seed)
            ev.header.stamp = self.node.get_clock().now().to_msg()
            self.pub_events.publish(ev)
        res.stages = self.stages_of(res.driver_episode_index, since)
        return res, since

    def _play(self, ep: ReplayEpisode, fps: float, t_started: float, res: ReplayResult, since: float) -> None:
        r = self.r
        # where the arm is at STARTED (a foreign dataset may start elsewhere: lead-in)
        current = None
        deadline = time.monotonic() + 2.0
        while current is None and time.monotonic() < deadline:
            _, qs = self._joints_since(t_started)
            current = np.asarray(qs[-1]) if qs else None
            time.sleep(0.005)
        offset = max(ep.start_offset_s, 0.0)  # the recorded first frame's time after STARTED, s
        res.lead_in_s = round(lead_in_time(current, ep.actions[0], r.lead_in_speed, r.lead_in_tolerance,
                                           available=offset), 4)
        if res.lead_in_s > 0:
            d = float(np.max(np.abs(ep.actions[0] - current)))
            self.log(f"dataset episode {ep.index} starts {d:.2f} rad from the arm's pose: "
                     f"{res.lead_in_s:.1f} s lead-in")
        timeline = Timeline(t_started + offset + res.lead_in_s, float(fps), ep.frames)
        size = max(2, int(round(r.window * fps)))
        # the first window is stamped at STARTED: the arm goes from its pose to frame 0 by its time
        schedule = WindowSchedule(ep.actions, timeline, size, 1.0 / r.publish_rate, first_stamp=t_started)
        span = timeline.end - t_started + r.hold_time
        wall_deadline = time.monotonic() + 3.0 * span + 30.0
        while True:
            now = self.now()
            w = schedule.poll(now)
            if w is not None:
                self.pub_traj.publish(trajectory_msg(w))
                res.windows += 1
            if now >= timeline.end and (
                    now >= timeline.end + r.hold_time
                    or self._find_event(res.driver_episode_index, EpisodeEvent.SUCCESS, since) is not None):
                break
            if time.monotonic() > wall_deadline:
                res.error = (f"node clock stalled: {now - t_started:.1f} s of {span:.1f} s played after a "
                             "wall-clock timeout")
                break
            time.sleep(0.002)
        res.duration_s = round(self.now() - t_started, 4)
        # joint states travel separately from /clock and may arrive after it: wait (bounded)
        # for one stamped at or after the last frame, so the comparison covers the whole episode
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            t, _ = self._joints_since(t_started)
            if len(t) and t[-1] >= timeline.end:
                break
            time.sleep(0.01)
        t, q = self._joints_since(t_started)
        res.joint_states = len(t)
        if ep.states is not None:
            err = state_error(timeline.time(np.arange(ep.frames)), ep.states, t, q)
            if err is not None:
                res.state_rms, res.state_max_abs, res.state_frames = err.rms, err.max_abs, err.frames

"""`run_policy_server`: the `run_policy` action (soarm_msgs/action/RunPolicy) around the running
driver and policy node. A thin node: the episode's state machine is `episode_runner`.

Per goal: `reset_episode` (task, seed, randomize) -> `policy/reset` -> `policy/enable true` ->
until SUCCESS / FAILURE of the episode, the time limit (node clock), a cancel, or an error of
the policy (`policy_status`) or the driver (`driver/status`) -> `policy/enable false` (the policy
publishes a hold at the measured position and the driver holds it) -> the result is sent once a
`policy_status` stamped after the disable shows the policy not running (or after
`hold_confirm_timeout`). A FAILURE `episode_events` message marks an episode that did not succeed
(timeout, canceled, aborted; not when someone else's FAILURE ended it).

One goal at a time. Goal responses carry no reason in ROS 2, so every goal is accepted and a
goal that cannot run (another one runs, a bad time limit, `record` without an auto-recording
recorder) ends at once: status ABORTED, outcome REJECTED, the reason in `message`.
Action status: SUCCEEDED for SUCCESS, CANCELED for CANCELED, ABORTED for every other outcome.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import rclpy
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_srvs.srv import SetBool, Trigger

from soarm_msgs.action import RunPolicy
from soarm_msgs.msg import DriverStatus, EpisodeEvent, PolicyStatus
from soarm_msgs.srv import ResetEpisode

from .episode_runner import EpisodeRun, Goal, Outcome, Phase, PolicyCounters, Result, goal_problem, rejected
from .ros_support import EXIT_CONFIG, EXIT_OK, ServiceError, call_service, declare_parameters, time_seconds

EVENTS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                        history=HistoryPolicy.KEEP_LAST)
#: the driver's ~/status: reliable, transient local, depth 1
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: best effort matches the policy's reliable policy_status publisher too
STREAM_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
ACTION_NAME = "run_policy"
NODE_NAME = "run_policy_server"
#: Seconds a goal running at Ctrl-C (SIGINT/SIGTERM) gets to disable the policy and see it hold
#: before the process exits (under `ros2 launch`'s sigterm_timeout of 5 s).
SHUTDOWN_TIMEOUT = 2.0

P = ParameterType
PARAMETERS = [
    # name, default, type, description
    ("check_rate_hz", 30.0, P.PARAMETER_DOUBLE,
     "Times per second a running goal checks for its outcome (events, time limit, cancel), Hz."),
    ("feedback_rate_hz", 5.0, P.PARAMETER_DOUBLE, "Feedback messages per second while a goal runs, Hz."),
    ("service_timeout", 30.0, P.PARAMETER_DOUBLE,
     "Seconds to wait for a service of the policy or the driver to appear and answer (reset_episode: reset_timeout)."),
    ("reset_timeout", 60.0, P.PARAMETER_DOUBLE,
     "Seconds to wait for reset_episode to answer (the arm goes home at limited speed)."),
    ("hold_confirm_timeout", 2.0, P.PARAMETER_DOUBLE,
     "Seconds to wait, after disabling the policy, for a policy_status that shows it holding before the result "
     "is sent."),
    ("recorder_node", "recorder", P.PARAMETER_STRING,
     "Name of the recorder node asked for its auto_record parameter when a goal has record true (relative "
     "names follow the namespace)."),
]


def result_msg(r: Result) -> RunPolicy.Result:
    c = r.counters
    return RunPolicy.Result(
        outcome=int(r.outcome), message=r.message, episode_index=r.episode_index, seed=r.seed, task=r.task,
        stages=r.stages, duration=r.duration, time_to_success=r.time_to_success, control_steps=c.steps,
        skipped_steps=c.skipped, skipped_stale=c.stale, skipped_missing=c.missing, skipped_no_action=c.no_action,
        skipped_late=c.late, interventions=r.interventions, human_time=r.human_time)


class RunPolicyServer(Node):
    """The action server. `action_name` and `node_name` let `evaluate` host one in its own process
    next to a launched one."""

    def __init__(self, node_name: str = NODE_NAME, action_name: str = ACTION_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.p = declare_parameters(self, PARAMETERS)
        for name in ("check_rate_hz", "feedback_rate_hz", "service_timeout", "reset_timeout"):
            if not self.p[name] > 0:
                raise ValueError(f"parameter {name} must be > 0 (got {self.p[name]})")
        self._lock = threading.Lock()
        self._run: EpisodeRun | None = None
        self._goal_id = ""
        self._settled: set = set()
        self._policy_stamp = -1.0  # stamp and state of the newest policy_status
        self._policy_state = -1
        group = ReentrantCallbackGroup()
        self.create_subscription(EpisodeEvent, "episode_events", self._on_event, EVENTS_QOS, callback_group=group)
        self.create_subscription(PolicyStatus, "policy_status", self._on_policy_status, STREAM_QOS,
                                 callback_group=group)
        self.create_subscription(DriverStatus, "driver/status", self._on_driver_status, STATUS_QOS,
                                 callback_group=group)
        self.pub_events = self.create_publisher(EpisodeEvent, "episode_events", EVENTS_QOS)
        self.cli_reset = self.create_client(ResetEpisode, "reset_episode", callback_group=group)
        self.cli_policy_reset = self.create_client(Trigger, "policy/reset", callback_group=group)
        self.cli_policy_enable = self.create_client(SetBool, "policy/enable", callback_group=group)
        self.cli_recorder = self.create_client(GetParameters, f"{self.p['recorder_node']}/get_parameters",
                                               callback_group=group)
        self._server = ActionServer(
            self, RunPolicy, action_name, execute_callback=self._execute,
            goal_callback=lambda _goal: GoalResponse.ACCEPT,  # refusals are results with a reason
            cancel_callback=lambda _handle: CancelResponse.ACCEPT, callback_group=group)
        self._shutting_down = False
        self._shutdown_deadline: float | None = None  # monotonic time the shutdown's waits end
        self.get_logger().info(f"action {action_name} ready (namespace {self.get_namespace()}): one goal at a time")

    def destroy_node(self):
        self._server.destroy()
        super().destroy_node()

    # ---------------------------------------------------------------- inputs
    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_event(self, msg: EpisodeEvent):
        with self._lock:
            if self._run is not None:
                self._run.on_event(msg.kind, msg.episode_index, time_seconds(msg.header.stamp), msg.stages, msg.task,
                                   msg.detail)

    def _on_policy_status(self, msg: PolicyStatus):
        counters = PolicyCounters(int(msg.steps), int(msg.skipped_stale), int(msg.skipped_missing),
                                  int(msg.skipped_no_action), int(msg.skipped_late))
        with self._lock:
            self._policy_stamp, self._policy_state = time_seconds(msg.header.stamp), int(msg.state)
            if self._run is not None:
                self._run.on_policy_status(msg.state, msg.hold_reason, counters)

    def _on_driver_status(self, msg: DriverStatus):
        with self._lock:
            if self._run is not None:
                self._run.on_driver_status(msg.state, msg.detail, msg.episode_index, msg.stages)

    # ---------------------------------------------------------------- the goal
    def _execute(self, handle) -> RunPolicy.Result:
        g = handle.request
        goal = Goal(task=g.task, time_limit=float(g.time_limit), seed=int(g.seed), randomize=bool(g.randomize),
                    record=bool(g.record))
        goal_id = bytes(handle.goal_id.uuid).hex()[:8]
        with self._lock:
            reason = self._busy_reason() or goal_problem(goal)
            claimed = reason is None
            if claimed:
                run = self._run = EpisodeRun(goal)
                self._goal_id = goal_id
        try:
            if reason is None and goal.record:
                reason = self._recording_problem()
            if reason is not None:
                self.get_logger().warning(f"goal {goal_id} rejected: {reason}")
                handle.abort()
                return result_msg(rejected(reason))
            self.get_logger().info(f"goal {goal_id}: task {goal.task!r}, time limit {goal.time_limit:.1f} s, "
                                   f"seed {goal.seed}, randomize {goal.randomize}")
            result = self._run_episode(handle, run)
            self.get_logger().info(f"goal {goal_id}: {result.outcome.name}: {result.message} (episode "
                                   f"{result.episode_index}, {result.duration:.1f} s, {result.counters.steps} steps)")
            if result.outcome == Outcome.SUCCESS:
                handle.succeed()
            elif result.outcome == Outcome.CANCELED:
                handle.canceled()
            else:
                handle.abort()
            return result_msg(result)
        finally:
            if claimed:
                with self._lock:
                    self._run = None  # before the result goes out: the next goal may start at once

    @property
    def running(self) -> bool:
        """True while a goal is claimed (from its start until just before its result is sent)."""
        with self._lock:
            return self._run is not None

    def shut_down(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """End the running goal, if any (ABORTED: the policy is disabled, the arm holds) and
        refuse new ones; True when a goal was running (keep spinning until `running` is False).
        The goal's start stops waiting for its services at once, and every wait of its stop
        (the disable, the hold confirmation) ends `timeout` s from now: it is over by then."""
        with self._lock:
            self._shutting_down = True
            self._shutdown_deadline = time.monotonic() + timeout
            if self._run is None:
                return False
            self._run.abort("the run_policy server is shutting down")
            return True

    def _start_interrupted(self) -> str:
        """Why a goal's start (reset, policy reset and enable, recorder check) stops waiting: shutdown."""
        return "the run_policy server is shutting down" if self._shutting_down else ""

    def _stop_interrupted(self) -> str:
        """Why a goal's stop (disable, hold confirmation) stops waiting: the shutdown's time is up."""
        deadline = self._shutdown_deadline
        if deadline is not None and time.monotonic() > deadline:
            return f"shutting down: no time left ({SHUTDOWN_TIMEOUT:g} s)"
        return ""

    def _busy_reason(self) -> str | None:
        if self._shutting_down:
            return "the run_policy server is shutting down"
        run = self._run
        if run is None:
            return None
        return (f"busy: goal {self._goal_id} runs ({run.phase.name.lower()}, {run.elapsed(self.now()):.1f} s of "
                f"{run.goal.time_limit:.1f} s); wait for its result or cancel it")

    def _recording_problem(self) -> str | None:
        """Why record=true cannot be honoured: the recorder must run with auto_record true."""
        name = self.p["recorder_node"]
        try:
            resp = call_service(self.cli_recorder, GetParameters.Request(names=["auto_record"]), 5.0,
                                "ask the recorder for auto_record", self._settled, wait_timeout=2.0,
                                interrupt=self._start_interrupted)
        except ServiceError:
            return (f"record is true but no recorder runs (no {self.cli_recorder.srv_name} service): start "
                    f"`ros2 run soarm_act_policy recorder` (node name {name!r}), or send record false")
        if not resp.values or resp.values[0].type != ParameterType.PARAMETER_BOOL or not resp.values[0].bool_value:
            return (f"record is true but the recorder {name!r} runs with auto_record false (it records only on "
                    "~/start): restart it with auto_record true, or send record false")
        return None

    def _call(self, client, request, timeout: float, what: str, interrupt):
        return call_service(client, request, timeout, what, self._settled,
                            wait_timeout=max(timeout, self.p["service_timeout"]), interrupt=interrupt)

    def _wait_for_clock(self) -> str | None:
        deadline = time.monotonic() + self.p["service_timeout"]
        while self.now() <= 0.0:
            if self._shutting_down:
                return "the run_policy server is shutting down"
            if time.monotonic() > deadline:
                return (f"no /clock after {self.p['service_timeout']:.0f} s with use_sim_time: start the sim driver, "
                        "or run this node with use_sim_time false on real hardware")
            time.sleep(0.05)
        return None

    def _run_episode(self, handle, run: EpisodeRun) -> Result:
        p = self.p
        goal = run.goal
        problem = self._wait_for_clock()
        if problem is not None:
            with self._lock:
                run.abort(problem)
            return run.result(self.now())
        self._feedback(handle, run)
        try:
            resp = self._call(self.cli_reset, ResetEpisode.Request(task=goal.task, seed=goal.seed,
                                                                   randomize=goal.randomize),
                              p["reset_timeout"], "reset the episode", self._start_interrupted)
            with self._lock:
                run.reset_done(resp.success, resp.message, resp.episode_index, resp.seed_used)
        except ServiceError as e:
            with self._lock:
                run.abort(str(e))
        enable_sent = False
        try:
            if handle.is_cancel_requested:  # a cancel during the reset: the policy never runs
                with self._lock:
                    run.cancel()
            if not run.done:
                r = self._call(self.cli_policy_reset, Trigger.Request(), p["service_timeout"], "reset the policy",
                               self._start_interrupted)
                if not r.success:
                    with self._lock:
                        run.abort(f"policy ~/reset refused: {r.message}")
            if not run.done:
                enable_sent = True
                r = self._call(self.cli_policy_enable, SetBool.Request(data=True), p["service_timeout"],
                               "enable the policy", self._start_interrupted)
                with self._lock:
                    if r.success:
                        run.started(self.now())
                    else:
                        run.abort(f"policy ~/enable refused: {r.message}")
            self._loop(handle, run)
        except ServiceError as e:
            with self._lock:
                run.abort(str(e))
        finally:
            if enable_sent:
                self._stop_policy(run)
        with self._lock:
            run.stopped(self.now())
            result = run.result(self.now())
        self._mark_failure(result)
        return result

    def _loop(self, handle, run: EpisodeRun) -> None:
        p = self.p
        period, feedback_period = 1.0 / p["check_rate_hz"], 1.0 / p["feedback_rate_hz"]
        # a stalled node clock (sim paused, /clock gone) never ends the time limit: a wall-clock guard
        wall_deadline = time.monotonic() + 3.0 * run.goal.time_limit + 30.0
        next_feedback = 0.0
        while True:
            with self._lock:
                if handle.is_cancel_requested:
                    run.cancel()
                if run.check(self.now()) is not None:
                    return
                if time.monotonic() > wall_deadline:
                    run.abort(f"node clock stalled: {run.elapsed(self.now()):.1f} s of {run.goal.time_limit:.1f} s "
                              "after a wall-clock guard of 3 x time limit + 30 s (is /clock running?)")
                    return
            if time.monotonic() >= next_feedback:
                self._feedback(handle, run)
                next_feedback = time.monotonic() + feedback_period
            time.sleep(period)

    def _feedback(self, handle, run: EpisodeRun) -> None:
        with self._lock:
            f = run.feedback(self.now())
        handle.publish_feedback(RunPolicy.Feedback(
            state=int(f.state), detail=f.detail, episode_index=f.episode_index, elapsed=f.elapsed,
            time_limit=f.time_limit, control_steps=f.control_steps, skipped_steps=f.skipped_steps, stages=f.stages,
            interventions=f.interventions, human_time=f.human_time, human_in_control=f.human_in_control))

    def _stop_policy(self, run: EpisodeRun) -> None:
        """Disable the policy (it holds: one hold command, then nothing; the driver holds the goal)
        and wait for a policy_status stamped after that which shows it not running. While the
        server shuts down, both waits end at the shutdown's deadline."""
        with self._lock:
            if run.phase == Phase.RUNNING:  # an exception left no outcome
                run.abort("stopped")
        try:
            r = self._call(self.cli_policy_enable, SetBool.Request(data=False), self.p["service_timeout"],
                           "disable the policy", self._stop_interrupted)
        except ServiceError as e:
            self._append(run, f"could not disable the policy: {e}")
            return
        if not r.success:
            self._append(run, f"policy ~/enable false refused: {r.message}")
            return
        t_off = self.now()
        deadline = time.monotonic() + self.p["hold_confirm_timeout"]
        while time.monotonic() < deadline and not self._stop_interrupted():
            with self._lock:
                if self._policy_stamp >= t_off and self._policy_state != PolicyStatus.RUNNING:
                    return
            time.sleep(0.01)
        self.get_logger().warning(f"no policy_status showing the hold within {self.p['hold_confirm_timeout']:.1f} s "
                                  "after ~/enable false")

    def _append(self, run: EpisodeRun, text: str) -> None:
        self.get_logger().error(text)
        with self._lock:
            run.message = f"{run.message}; {text}" if run.message else text

    def _mark_failure(self, result: Result) -> None:
        """A FAILURE event for an episode that was started and did not succeed (recordings and
        datasets keep the outcome); none when someone else's FAILURE ended it."""
        if result.episode_index < 0 or result.outcome in (Outcome.SUCCESS, Outcome.FAILURE):
            return
        ev = EpisodeEvent(episode_index=result.episode_index, task=result.task, kind=EpisodeEvent.FAILURE,
                          detail=f"run_policy: {result.message}", seed=result.seed,
                          stages=max(result.stages, 0))
        ev.header.stamp = self.get_clock().now().to_msg()
        self.pub_events.publish(ev)


def main(args=None) -> int:
    """Serve the action until Ctrl-C (SIGINT) or SIGTERM. A goal running then is aborted and the
    policy disabled before the node goes, within SHUTDOWN_TIMEOUT s (rclpy's own SIGINT handler is
    off so that the context stays up for that; the signal only sets a flag, so it never lands
    inside the executor). Exit codes: 0 stopped, 2 refused configuration."""
    stop = threading.Event()
    with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            node = RunPolicyServer()
        except (ValueError, ParameterException) as e:
            print(f"run_policy_server: error: {e}", file=sys.stderr, flush=True)
            return EXIT_CONFIG
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        try:
            while rclpy.ok() and not stop.is_set():
                executor.spin_once(timeout_sec=0.1)  # returns often: the signal's flag is seen
            if stop.is_set() and node.shut_down():
                # the goal's waits end at the shutdown deadline; a little more for its result to go out
                deadline = time.monotonic() + SHUTDOWN_TIMEOUT + 0.5
                while node.running and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            pass
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

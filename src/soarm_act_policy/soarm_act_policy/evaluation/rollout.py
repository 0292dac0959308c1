"""In-process closed-loop rollouts of a checkpoint in the sim task, without ROS or DDS.

    rollout CHECKPOINT --seeds 1000-1009 --paths lerobot loop-chunk loop-ensemble --output-dir DIR

The environment is the driver's sim core as a Gymnasium env, ``soarm/PickPlace-v0``,
reached only through Gymnasium's registry: soarm_driver declares it in the
``gymnasium.envs`` entry-point group, `load_gym_plugins` loads that group (Gymnasium 1.x
no longer does it by itself), and this package never imports soarm_driver. The sim runs
as fast as the CPU allows (no pacing), except for ``loop-async`` (see below).

Execution paths (``--paths``), each on the same seeds (same scenes):

- ``lerobot``: LeRobot's own ``policy.select_action`` with its action queue of
  ``n_action_steps`` (the checkpoint's, or ``--n-action-steps``), as ``lerobot-eval`` runs it;
- ``lerobot-ensemble``: ``select_action`` with LeRobot's temporal ensembling
  (``temporal_ensemble_coeff`` = ``--ensemble-coeff``, ``n_action_steps`` 1);
- ``loop-ensemble``, ``loop-chunk``, ``loop-async``: our `ControlLoop` (the policy node's tick,
  through its public API) in that mode, ticked once per env step with ``now`` = the sim
  time of the observation and every stream stamped with it; the action is the plan's
  first row. Inference inside the tick takes no sim time in-process (the sim waits for the
  model), as in the ``lerobot`` paths. ``loop-async`` runs inference on the loop's worker
  thread, which only makes sense against a clock: its env steps are paced to real time.

Every env step sends one action (6 joint goals, rad) that the env executes like the
driver executes a one-point trajectory (interpolated at its control rate, the driver's
limits). Episodes end on success or after ``--episode-time`` s of sim time.

The JSON report (``rollout_report.json``) has per path: success rate, stage rates (reached
/ grasped / placed / released), mean time to success, wall time, steps per second, and per
episode: seed, success, stages, steps, time to success, initial cube position, holds.
`evaluate_checkpoints` evaluates a list of checkpoints on seeds (learning curves).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..joints import JOINT_NAMES
from ..observation import IMAGE_PREFIX, STATE_KEY, ObservationMapping, joint_vector
from .report import format_stage_rates, stage_names, stage_rates, write_json

#: The Gymnasium id of the sim task (registered by soarm_driver's entry point).
ENV_ID = "soarm/PickPlace-v0"
#: The entry-point group Gymnasium env plugins are declared in.
PLUGIN_GROUP = "gymnasium.envs"
REPORT_JSON = "rollout_report.json"
LEROBOT_PATHS = ("lerobot", "lerobot-ensemble")
LOOP_PATHS = ("loop-ensemble", "loop-chunk", "loop-async")
PATHS = LEROBOT_PATHS + LOOP_PATHS
#: The env's joint order (= the driver's; soarm_act_policy.joints.JOINT_NAMES).
ENV_JOINTS = tuple(JOINT_NAMES)

_plugins: list[str] | None = None


def load_gym_plugins(group: str = PLUGIN_GROUP) -> list[str]:
    """Call every function declared in the `group` entry points once per process (what
    Gymnasium < 1.0 did at import); returns their names. A plugin that fails is reported on
    stderr and skipped."""
    global _plugins
    if _plugins is not None:
        return list(_plugins)
    from importlib import metadata

    _plugins = []
    for ep in metadata.entry_points(group=group):
        try:
            fn = ep.load()
            if callable(fn):
                fn()
            _plugins.append(ep.name)
        except Exception as e:
            print(f"rollout: gymnasium plugin {ep.name} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                  file=sys.stderr)
    return list(_plugins)


def make_env(**kwargs):
    """``gymnasium.make(ENV_ID, **kwargs)`` after loading the env plugins."""
    import gymnasium

    load_gym_plugins()
    if ENV_ID not in gymnasium.registry:
        raise RuntimeError(
            f"Gymnasium has no {ENV_ID!r}: is soarm_driver installed (colcon build) and its "
            f"'{PLUGIN_GROUP}' entry point visible (source activate.sh)?"
        )
    return gymnasium.make(ENV_ID, **kwargs)


def env_kwargs_from_driver_params(files: Sequence[str | Path]) -> dict:
    """Env settings from driver parameter files (``/**: ros__parameters``, later files win):
    home_pose, joint limits, max_joint_velocity, control_rate_hz, the first camera's size as
    image_size, ``sim.randomize`` as randomize and the other ``sim.*`` backend parameters
    (e.g. scene_spread) as ``sim`` (``sim.seed`` is not used: reset's seed decides).
    Unknown keys are ignored."""
    import yaml

    params: dict = {}
    for f in files:
        doc = yaml.safe_load(Path(f).read_text()) or {}
        for section in doc.values():
            p = (section or {}).get("ros__parameters") or {}
            for k, v in p.items():
                if isinstance(v, dict) and isinstance(params.get(k), dict):
                    params[k] = {**params[k], **{kk: ({**params[k].get(kk, {}), **vv} if isinstance(vv, dict) else vv)
                                                 for kk, vv in v.items()}}
                else:
                    params[k] = v
    out = {}
    for key in ("home_pose", "joint_lower_limits", "joint_upper_limits", "max_joint_velocity", "control_rate_hz"):
        if key in params:
            out[key] = params[key]
    cams = params.get("cameras") or {}
    names = [n for n in params.get("camera_names", list(cams)) if n]
    if names and isinstance(cams.get(names[0]), dict) and "width" in cams[names[0]]:
        out["image_size"] = (int(cams[names[0]]["width"]), int(cams[names[0]]["height"]))
    sim = dict(params.get("sim") or {})
    for key, value in list(params.items()):  # flat "sim.key" entries too
        if key.startswith("sim."):
            sim[key[4:]] = value
    sim.pop("seed", None)
    if "randomize" in sim:
        out["randomize"] = bool(sim.pop("randomize"))
    if sim:
        out["sim"] = sim
    return out


# ---------------------------------------------------------------------- policies
class _Inputs:
    """Env observation -> the checkpoint's unbatched input tensors; actions back to the env's order."""

    def __init__(self, mapping: ObservationMapping, image_shapes: dict):
        self.mapping = mapping
        self.image_shapes = image_shapes

    def tensors(self, obs: dict) -> dict:
        import torch

        from ..images import to_chw_float

        q = joint_vector(self.mapping.joint_names, ENV_JOINTS, np.asarray(obs[STATE_KEY], dtype=np.float64))
        out = {STATE_KEY: torch.from_numpy(self.mapping.unit_map.to_policy(q).astype(np.float32))}
        for camera in self.mapping.cameras:
            key = self.mapping.feature_key(camera)
            _, h, w = self.image_shapes[key]
            out[key] = to_chw_float(obs[IMAGE_PREFIX + camera], (h, w))
        return out

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """(n, action_dim) checkpoint units, mapping order -> (n, 6) radians, env order."""
        rad = self.mapping.unit_map.to_radians(np.atleast_2d(actions))
        index = [self.mapping.joint_names.index(j) for j in ENV_JOINTS]
        return rad[:, index]


class Runner:
    """One execution path: `reset()` per episode, `act(obs, t)` per env step -> 6 goals (rad)."""

    name = "runner"
    holds = 0

    def reset(self) -> None: ...

    def act(self, obs: dict, t: float) -> np.ndarray: ...

    def close(self) -> None: ...


class LeRobotRunner(Runner):
    """LeRobot's ``select_action`` (its action queue, or its temporal ensembling)."""

    def __init__(self, name: str, model, inputs: _Inputs):
        self.name, self.model, self.inputs = name, model, inputs

    def reset(self) -> None:
        self.model.policy.reset()
        self.holds = 0

    def act(self, obs: dict, t: float) -> np.ndarray:
        import torch

        with torch.inference_mode():
            action = self.model.post(self.model.policy.select_action(self.model.pre(self.inputs.tensors(obs))))
        return self.inputs.to_env(action.detach().cpu().numpy().astype(np.float64).reshape(1, -1))[0]


class LoopRunner(Runner):
    """Our ControlLoop (public API only) in one mode; `act` ticks it at the observation's sim time."""

    def __init__(self, name: str, model, inputs: _Inputs, mode: str, fps: float, n_action_steps: int,
                 ensemble_coeff: float):
        from ..control_loop import ControlLoop, LoopConfig

        self.name, self.model, self.inputs = name, model, inputs
        spec = model.spec
        self.streams = ["joint_states"] + [f"cameras/{c}/image_raw" for c in inputs.mapping.cameras]
        self.loop = ControlLoop(
            LoopConfig(mode=mode, period=1.0 / fps, chunk_size=spec.chunk_size,
                       n_action_steps=n_action_steps or spec.n_action_steps, ensemble_coeff=ensemble_coeff,
                       action_dim=len(inputs.mapping.joint_names)),
            self._predict,
        )
        self._last: np.ndarray | None = None

    def _predict(self, obs) -> np.ndarray:
        # ControlLoop wants radians in the mapping's joint order
        chunk = self.model.predict_chunk(self.inputs.tensors(obs))
        return self.inputs.mapping.unit_map.to_radians(chunk)

    def reset(self) -> None:
        self.loop.episode_started()
        self.loop.set_enabled(True)
        self._last = None
        self.holds = 0

    def act(self, obs: dict, t: float) -> np.ndarray:
        from ..control_loop import Snapshot

        result = self.loop.tick(t, Snapshot({s: t for s in self.streams}, obs))
        if result.plan is None:  # holding: the driver keeps the last goal (or where the arm is)
            self.holds += 1
            if self.loop.error:
                raise RuntimeError(f"{self.name}: {self.loop.error}")
            if self._last is None:
                self._last = np.asarray(obs[STATE_KEY], dtype=np.float64).copy()
            return self._last
        index = [self.inputs.mapping.joint_names.index(j) for j in ENV_JOINTS]
        self._last = np.asarray(result.plan[0], dtype=np.float64)[index]
        return self._last

    def close(self) -> None:
        self.loop.close()


def _load(checkpoint: Path, device: str, lerobot_config: Callable | None = None):
    from ..checkpoint import LoadedPolicy, load_config

    config = load_config(checkpoint)
    if lerobot_config is not None:
        lerobot_config(config)
    return LoadedPolicy(checkpoint, device, config=config)


def make_runners(checkpoint: str | Path, paths: Sequence[str], *, fps: float = 30.0, device: str = "cpu",
                 n_action_steps: int = 0, ensemble_coeff: float = 0.01,
                 mapping: ObservationMapping | None = None) -> list[Runner]:
    """One Runner per path for `checkpoint` (paths: see PATHS; models loaded once per kind)."""
    from ..checkpoint import check_compatible, read_spec, resolve_checkpoint

    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise ValueError(f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}")
    path = resolve_checkpoint(str(checkpoint))
    spec = read_spec(path)
    mapping = mapping or ObservationMapping(cameras=tuple(k.removeprefix(IMAGE_PREFIX) for k in spec.image_shapes))
    check_compatible(spec, mapping)
    inputs = _Inputs(mapping, spec.image_shapes)
    runners: list[Runner] = []
    shared = None
    for name in paths:
        if name == "lerobot":
            def queue(cfg, n=n_action_steps):
                if n:
                    cfg.n_action_steps = int(n)
            runners.append(LeRobotRunner(name, _load(path, device, queue), inputs))
        elif name == "lerobot-ensemble":
            def ensemble(cfg, c=ensemble_coeff):
                cfg.temporal_ensemble_coeff, cfg.n_action_steps = float(c), 1
            runners.append(LeRobotRunner(name, _load(path, device, ensemble), inputs))
        else:
            shared = shared or _load(path, device)
            runners.append(LoopRunner(name, shared, inputs, name.removeprefix("loop-"), fps, n_action_steps,
                                      ensemble_coeff))
    return runners


# ---------------------------------------------------------------------- rollouts
@dataclass
class EpisodeRollout:
    seed: int
    success: bool = False
    stages: int = 0
    steps: int = 0
    time_to_success: float | None = None  # s of sim time after reset
    duration: float = 0.0  # s of sim time
    wall_s: float = 0.0
    holds: int = 0  # ControlLoop ticks that held (no plan)
    cube_start: list = field(default_factory=list)  # cube centre at reset (world, m)
    final_state: list = field(default_factory=list)  # joint positions at the end (rad)
    error: str | None = None
    #: the actions sent (steps x 6, rad) when recorded; not in the JSON
    actions: list | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("actions")
        d["stage_names"] = stage_names(self.stages)
        return d


def rollout_episode(env, runner: Runner, seed: int, *, real_time: bool = False, max_steps: int | None = None,
                    record: bool = False, on_step: Callable[[], None] | None = None) -> EpisodeRollout:
    """One episode of `runner` in `env` (a soarm/PickPlace-v0 env) on scene `seed`.

    max_steps: stop earlier than the env's time limit; record: keep the actions sent."""
    res = EpisodeRollout(seed=int(seed), actions=[] if record else None)
    obs, info = env.reset(seed=int(seed))
    poses = env.unwrapped.object_poses()
    res.cube_start = [float(v) for v in poses["cube"][0]]
    runner.reset()
    fps = env.unwrapped.fps
    t_wall = time.perf_counter()
    try:
        while True:
            t = info["time"]
            action = runner.act(obs, t)
            obs, _, terminated, truncated, info = env.step(action)
            res.steps += 1
            if record:
                res.actions.append(np.asarray(action, dtype=np.float64).copy())
            if info["is_success"] and res.time_to_success is None:
                res.time_to_success = float(info["time"])
            if on_step is not None:
                on_step()
            if terminated or truncated or (max_steps is not None and res.steps >= max_steps):
                break
            if real_time:  # sim time never runs ahead of the wall clock
                ahead = info["time"] - (time.perf_counter() - t_wall)
                if ahead > 0:
                    time.sleep(ahead)
    except Exception as e:
        res.error = f"{type(e).__name__}: {e}"
    res.wall_s = time.perf_counter() - t_wall
    res.success = bool(info["is_success"])
    res.stages = int(info["stages"])
    res.duration = res.steps / fps
    res.holds = int(getattr(runner, "holds", 0))
    res.final_state = [float(v) for v in obs[STATE_KEY]]
    return res


def summarize_path(name: str, episodes: list[EpisodeRollout]) -> dict:
    n = len(episodes)
    ok = [e for e in episodes if e.success]
    times = [e.time_to_success for e in ok if e.time_to_success is not None]
    wall = sum(e.wall_s for e in episodes)
    steps = sum(e.steps for e in episodes)
    return {
        "path": name,
        "num_episodes": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "stage_rates": stage_rates([e.stages for e in episodes]),
        "mean_time_to_success": sum(times) / len(times) if times else None,
        "wall_s": round(wall, 3),
        "steps_per_s": round(steps / wall, 1) if wall > 0 else None,
        "errors": sum(1 for e in episodes if e.error),
        "episodes": [e.to_json() for e in episodes],
    }


def env_kwargs_for_checkpoint(checkpoint: str | Path, env_kwargs: dict | None = None) -> dict:
    """`env_kwargs` completed from the checkpoint: ``image_size`` (its first camera's, unless
    given) and ``cameras`` (its image features', unless given)."""
    from ..checkpoint import read_spec, resolve_checkpoint

    kwargs = dict(env_kwargs or {})
    spec = read_spec(resolve_checkpoint(str(checkpoint)))
    if "image_size" not in kwargs and spec.image_shapes:
        _, h, w = next(iter(spec.image_shapes.values()))
        kwargs["image_size"] = (int(w), int(h))
    kwargs.setdefault("cameras", tuple(k.removeprefix(IMAGE_PREFIX) for k in spec.image_shapes))
    return kwargs


def evaluate_checkpoint(checkpoint: str | Path, seeds: Sequence[int], paths: Sequence[str] = ("lerobot",), *,
                        env_kwargs: dict | None = None, device: str = "cpu", n_action_steps: int = 0,
                        ensemble_coeff: float = 0.01, progress: bool = True, env=None) -> dict:
    """Roll `checkpoint` out on `seeds` through each path; returns {"paths": {name: summary}, ...}.

    env_kwargs: for gymnasium.make (fps, episode_time, home_pose, ...); image_size defaults to
    the checkpoint's. `env`: an existing env to reuse (its settings then win)."""
    seeds = [int(s) for s in seeds]
    kwargs = env_kwargs_for_checkpoint(checkpoint, env_kwargs)
    own_env = env is None
    env = env if env is not None else make_env(**kwargs)
    fps = env.unwrapped.fps
    runners = make_runners(checkpoint, paths, fps=fps, device=device, n_action_steps=n_action_steps,
                           ensemble_coeff=ensemble_coeff)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(runners) * len(seeds) * env.unwrapped.max_episode_steps, unit="step",
                   desc=Path(str(checkpoint)).name, dynamic_ncols=True, leave=True,
                   mininterval=0.5 if sys.stderr.isatty() else 10.0)
    out = {}
    try:
        for runner in runners:
            episodes = []
            for seed in seeds:
                if bar is not None:
                    bar.set_postfix_str(f"{runner.name} seed {seed}")
                before = bar.n if bar is not None else 0
                ep = rollout_episode(env, runner, seed, real_time=runner.name == "loop-async",
                                     on_step=(lambda: bar.update(1)) if bar is not None else None)
                if bar is not None:  # an early success skips the rest of the episode's budget
                    bar.update(env.unwrapped.max_episode_steps - (bar.n - before))
                episodes.append(ep)
            out[runner.name] = summarize_path(runner.name, episodes)
    finally:
        for runner in runners:
            runner.close()
        if bar is not None:
            bar.close()
        if own_env:
            env.close()
    return {
        "checkpoint": str(checkpoint),
        "seeds": seeds,
        "env": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()},
        "device": device,
        "paths": out,
    }


def evaluate_checkpoints(checkpoints: Iterable[str | Path], seeds: Sequence[int], paths: Sequence[str] = ("lerobot",),
                         **kwargs) -> list[dict]:
    """`evaluate_checkpoint` for each checkpoint (a learning curve): one env for all of them.

    Returns one dict per checkpoint: {"checkpoint", "paths": {name: {"success_rate",
    "stage_rates", ...}}}."""
    checkpoints = [str(c) for c in checkpoints]
    if not checkpoints:
        return []
    env = kwargs.pop("env", None)
    own = env is None
    if own:
        env = make_env(**env_kwargs_for_checkpoint(checkpoints[0], kwargs.get("env_kwargs")))
    try:
        return [evaluate_checkpoint(c, seeds, paths, env=env, **kwargs) for c in checkpoints]
    finally:
        if own:
            env.close()


# ---------------------------------------------------------------------- CLI
def parse_seeds(texts: Sequence[str]) -> list[int]:
    """["1000-1004", "7"] -> [1000, 1001, 1002, 1003, 1004, 7]."""
    seeds = []
    for text in texts:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if sep and lo:
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rollout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="LeRobot pretrained_model dir, a training output or checkpoint dir")
    p.add_argument("--seeds", nargs="+", default=None,
                   help="scene seeds, e.g. 1000-1009 or 3 5 8 (default: --seed .. --seed + --num-episodes - 1)")
    p.add_argument("--seed", type=int, default=1000, help="first seed (default: 1000, as evaluate)")
    p.add_argument("--num-episodes", type=int, default=10, help="episodes per path (default: 10)")
    p.add_argument("--paths", nargs="+", default=["lerobot", "loop-chunk", "loop-ensemble"], choices=PATHS,
                   help="execution paths (default: lerobot loop-chunk loop-ensemble)")
    p.add_argument("--episode-time", type=float, default=30.0, help="s of sim time per episode (default: 30)")
    p.add_argument("--fps", type=float, default=30.0, help="env steps per second = the dataset fps (default: 30)")
    p.add_argument("--driver-params", nargs="*", default=[], metavar="YAML",
                   help="driver parameter files to take home_pose, limits, control rate and camera size from, "
                        "e.g. config/driver.yaml config/demo/driver.yaml (the demo's)")
    p.add_argument("--home-pose", type=float, nargs=6, default=None, help="arm start pose (rad)")
    p.add_argument("--image-size", default=None, help="WIDTHxHEIGHT of the cameras (default: the checkpoint's)")
    p.add_argument("--no-randomize", dest="randomize", action="store_false", help="nominal scene")
    p.add_argument("--n-action-steps", type=int, default=0,
                   help="lerobot / loop-chunk: actions per chunk (0: checkpoint's)")
    p.add_argument("--ensemble-coeff", type=float, default=0.01, help="temporal ensembling coefficient (default: 0.01)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N] | mps (default: cpu)")
    p.add_argument("--torch-threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--output-dir", type=Path, default=None, help="where rollout_report.json goes (default: none)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the rollouts. Exit codes: 0 done, 1 an episode failed with an error, 2 bad input, 130 Ctrl-C."""
    args = build_parser().parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.seed, args.seed + args.num_episodes))
    if not seeds or args.episode_time <= 0 or args.fps <= 0:
        print("rollout: error: need seeds, --episode-time > 0 and --fps > 0", file=sys.stderr)
        return 2
    env_kwargs = {"fps": args.fps, "episode_time": args.episode_time, "randomize": args.randomize}
    try:
        env_kwargs.update(env_kwargs_from_driver_params(args.driver_params))
    except (OSError, ValueError) as e:
        print(f"rollout: error: --driver-params: {e}", file=sys.stderr)
        return 2
    if args.home_pose:
        env_kwargs["home_pose"] = args.home_pose
    if args.image_size:
        w, _, h = args.image_size.lower().partition("x")
        env_kwargs["image_size"] = (int(w), int(h))
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    from ..checkpoint import CheckpointError

    t0 = time.monotonic()
    try:
        report = evaluate_checkpoint(args.checkpoint, seeds, args.paths, env_kwargs=env_kwargs, device=args.device,
                                     n_action_steps=args.n_action_steps, ensemble_coeff=args.ensemble_coeff,
                                     progress=args.progress)
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"rollout: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rollout: interrupted", file=sys.stderr)
        return 130
    report["wall_time_s"] = round(time.monotonic() - t0, 1)
    report["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.output_dir is not None:
        path = write_json(report, Path(args.output_dir) / REPORT_JSON)
        print(f"[rollout] report: {path}")
    for name, s in report["paths"].items():
        print(f"[rollout] {name:16s} success {s['successes']}/{s['num_episodes']} ({100 * s['success_rate']:.0f} %); "
              f"stages: {format_stage_rates(s['stage_rates'])}; {s['wall_s']:.1f} s wall, "
              f"{s['steps_per_s']} steps/s" + (f"; {s['errors']} error(s)" if s["errors"] else ""), flush=True)
    errors = [e["error"] for s in report["paths"].values() for e in s["episodes"] if e["error"]]
    if errors:
        print(f"rollout: first error: {errors[0]}", file=sys.stderr)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())

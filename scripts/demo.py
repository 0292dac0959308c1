#!/usr/bin/env python3
"""The end-to-end simulated demo: demonstrations -> dataset -> ACT -> closed-loop evaluation.

Starts the installed executables as processes over DDS (as `ros2 run` would):

  1. record    driver (MuJoCo sim) + recorder + scripted teleop (episodes:=N): one bag per demo
  2. convert   bag_to_lerobot: bags -> LeRobot dataset
  3. train     pretrain_backbone (ResNet18 on labelled sim frames, --pretrain-minutes) then
               train --config cpu with that backbone frozen (LeRobot's training loop), while
               select_checkpoint rolls each saved checkpoint out in-process on validation seeds
               (--validation-seeds, never used for demos or evaluation) on the core training
               leaves free, and links the best one as checkpoints/best
  4. evaluate  driver (sim) + policy (the chosen checkpoint) + evaluate: success rate + report

Every process logs to <output-dir>/logs/<name>.log; all are stopped on Ctrl-C or failure.
Run through scripts/run_demo.sh (sets everything up first) or, after `source activate.sh`:

    python scripts/demo.py --output-dir outputs/demo
    # GPU host: more demos, the baseline preset, bigger images, no time budget
    python scripts/demo.py --demos 100 --train-config baseline --train-steps 50000 --train-minutes 0 \\
        --image-size 320x240 --device cuda --eval-episodes 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "install"
CONFIG = ROOT / "config"
REPO_ID = "local/soarm_sim_demo"


def banner(text: str) -> None:
    line = "=" * 78
    print(f"\n{line}\n== {text}\n{line}", flush=True)


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


class DemoError(RuntimeError):
    pass


class Proc:
    """An installed executable as a child process (own process group), output in a log file."""

    def __init__(self, name: str, package: str, executable: str, args: list[str], log_dir: Path, env: dict,
                 echo: str | None = None):
        exe = INSTALL / package / "lib" / package / executable
        if not exe.exists():
            raise DemoError(f"{exe} is not installed: run bash scripts/setup.sh")
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(exe), *args], stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=str(log_dir.parent))
        self._echo_stop = threading.Event()
        self._echo = None
        if echo:
            self._echo = threading.Thread(target=self._follow, args=(re.compile(echo),), daemon=True)
            self._echo.start()

    def _follow(self, pattern: re.Pattern) -> None:
        """Print the log lines matching pattern (visible progress)."""
        with open(self.log_path, errors="replace") as f:
            while True:
                line = f.readline()
                if line:
                    if pattern.search(line):
                        print(f"  [{self.name}] {line.rstrip()}", flush=True)
                    continue
                if self._echo_stop.is_set():
                    return
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is not None:
                self._finish_echo()

    def _finish_echo(self):
        self._echo_stop.set()
        if self._echo is not None:
            self._echo.join(timeout=2)
            self._echo = None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._finish_echo()
        self._log.close()
        return self.proc.returncode

    def tail(self, n: int = 25) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


class Demo:
    def __init__(self, args):
        self.a = args
        self.out = args.output_dir.resolve()
        self.logs = self.out / "logs"
        self.procs: list[Proc] = []
        self.timings: dict[str, float] = {}
        self.trained_steps = None
        self.selection = None  # checkpoint_selection.json once select_checkpoint has chosen
        self.use_best: bool | None = None  # evaluate checkpoints/best (None: decide from the run dir)
        self.env = {
            **os.environ,
            "ROS_DOMAIN_ID": str(args.domain_id),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"),
        }

    # ------------------------------------------------------------------ processes
    def start(self, name, package, executable, args=(), params_files=(), params=None, echo=None, ros=True) -> Proc:
        argv = list(args)
        if ros:
            argv.append("--ros-args")
            for f in params_files:
                argv += ["--params-file", str(f)]
            for k, v in (params or {}).items():
                v = ("true" if v else "false") if isinstance(v, bool) else v
                argv += ["-p", f"{k}:={v}"]
        p = Proc(name, package, executable, argv, self.logs, self.env, echo=echo)
        self.procs.append(p)
        say(f"started {name} (pid {p.proc.pid}, log {p.log_path.relative_to(self.out)})")
        return p

    def stop(self, *procs: Proc) -> None:
        for p in procs:
            if p in self.procs:
                code = p.stop()
                self.procs.remove(p)
                say(f"stopped {p.name} (exit {code})")

    def stop_all(self) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p)

    def run_to_end(self, p: Proc, timeout: float, what: str, may_exit: tuple = ()) -> None:
        """Wait for a one-shot process; fail with its log tail when it fails or hangs, or when
        another process (but those in `may_exit`) exits meanwhile."""
        deadline = time.monotonic() + timeout
        while p.alive():
            for other in self.procs:
                if other is not p and other not in may_exit and not other.alive():
                    raise DemoError(f"{other.name} exited ({other.proc.returncode}) during {what}:\n{other.tail()}")
            if time.monotonic() > deadline:
                raise DemoError(f"{what} did not finish within {timeout:.0f} s:\n{p.tail()}")
            time.sleep(0.5)
        code = p.wait()
        if code != 0:
            raise DemoError(f"{what} failed (exit {code}); log {p.log_path}:\n{p.tail()}")
        self.procs.remove(p)
        p.stop()

    def driver(self, real_time_factor: float) -> Proc:
        return self.start("driver", "soarm_driver", "driver",
                          params_files=[CONFIG / "driver.yaml", CONFIG / "demo" / "driver.yaml"],
                          params={"real_time_factor": real_time_factor, **self.camera_params()},
                          echo=r"(?i)error|exception")

    def camera_params(self) -> dict:
        """--image-size overrides config/demo/driver.yaml's 80x60 for both cameras."""
        if not self.a.image_size:
            return {}
        w, h = self.a.image_size
        return {f"cameras.{c}.{k}": v for c in ("front", "wrist") for k, v in (("width", w), ("height", h))}

    # ------------------------------------------------------------------ stages
    def stage(self, name: str, fn) -> None:
        banner(name)
        t0 = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t0, 1)
        say(f"{name}: done in {self.timings[name]:.0f} s")

    def record(self) -> None:
        bags = self.out / "bags"
        # the scripted expert needs no thinking time: the sim may run faster than the wall clock
        driver = self.driver(self.a.record_speed)
        recorder = self.start("recorder", "soarm_act_policy", "recorder",
                              params_files=[CONFIG / "recorder.yaml", CONFIG / "demo" / "recorder.yaml"],
                              params={"output_dir": str(bags), "use_sim_time": True}, echo=r"(?i)error|bag")
        teleop = self.start("teleop", "soarm_driver", "teleop",
                            params_files=[CONFIG / "teleop.yaml", CONFIG / "demo" / "teleop.yaml"],
                            params={"episodes": self.a.demos, "seed": self.a.demo_seed, "use_sim_time": True},
                            echo=r"session episode|session done|error")
        try:
            self.run_to_end(teleop, timeout=120 + 60 * self.a.demos, what="recording the demonstrations")
        except DemoError:
            # teleop may crash while shutting down after a complete session (an rclpy thread
            # teardown abort); its own "session done" line says whether the demos ran.
            done = re.search(r"session done: (\d+)/(\d+)", teleop.log_path.read_text(errors="replace"))
            if teleop.alive() or not done:
                raise
            say(f"teleop exited with {teleop.proc.returncode} after its session ({done.group(0)}): continuing")
            if teleop in self.procs:
                self.procs.remove(teleop)
                teleop.stop()
        time.sleep(1.0)  # the last episode's tail
        self.stop(recorder, driver)
        n = len([d for d in bags.iterdir() if d.is_dir()]) if bags.is_dir() else 0
        if n == 0:
            raise DemoError(f"no bags recorded in {bags}; recorder log:\n{recorder.tail()}")
        say(f"{n} bags in {bags}")

    def convert(self) -> None:
        p = self.start("bag_to_lerobot", "soarm_act_policy", "bag_to_lerobot", ros=False,
                       args=[str(self.out / "bags"), "--repo-id", REPO_ID, "--root", str(self.out / "dataset"),
                             "--on-problem", "skip", "--report", str(self.out / "conversion_report.json"), "--quiet"],
                       echo=r"(?i)episode|frames|error|skip|problem")
        self.run_to_end(p, timeout=60 + 30 * self.a.demos, what="converting the bags")
        info = json.loads((self.out / "dataset" / "meta" / "info.json").read_text())
        say(f"dataset: {info.get('total_episodes')} episodes, {info.get('total_frames')} frames "
            f"at {info.get('fps')} fps")

    def pretrain_backbone(self) -> Path:
        """The backbone pretrained on labelled sim frames (pretrain_backbone), for a frozen-backbone ACT."""
        weights = self.out / "backbone" / "resnet18.safetensors"
        t0 = time.monotonic()
        p = self.start("pretrain_backbone", "soarm_act_policy", "pretrain_backbone", ros=False,
                       args=["--dataset-root", str(self.out / "dataset"), "--output", str(weights),
                             "--driver-params", str(CONFIG / "driver.yaml"), str(CONFIG / "demo" / "driver.yaml"),
                             "--samples", str(self.a.pretrain_samples), "--minutes", str(self.a.pretrain_minutes),
                             "--threads", "1"],
                       echo=r"\[pretrain_backbone\]|error|Error")
        self.run_to_end(p, timeout=self.a.pretrain_minutes * 60 + 600, what="pretraining the backbone")
        self.timings["3a pretrain backbone"] = round(time.monotonic() - t0, 1)
        return weights

    def train(self) -> None:
        args = ["--repo-id", REPO_ID, "--dataset-root", str(self.out / "dataset"), "--output-dir",
                str(self.out / "train"), "--config", self.a.train_config, "--steps", str(self.a.train_steps),
                "--save-freq", str(min(self.a.save_every, self.a.train_steps)), "--no-progress-bar"]
        if self.a.pretrain_minutes > 0:
            args += ["--pretrained-backbone", str(self.pretrain_backbone()), "--lr-backbone", "0"]
        if self.a.train_minutes > 0:
            args += ["--max-minutes", str(self.a.train_minutes)]
        if self.a.device:
            args += ["--device", self.a.device]
        args += self.a.train_arg
        p = self.start("train", "soarm_act_policy", "train", args=args, ros=False,
                       echo=r"step:|error|Error|\[train\]|num_learnable_params|dataset.num_frames")
        selector = self.start_selector(follow=p) if self.a.validation_seeds else None
        # train stops itself at --max-minutes with a checkpoint of its last step; the guard
        # here only catches a hung process.
        self.run_to_end(p, timeout=(self.a.train_minutes * 60 + 600) if self.a.train_minutes > 0 else 7 * 86400,
                        what="training", may_exit=(selector,))
        last = self.out / "train" / "checkpoints" / "last"
        if not (last / "pretrained_model").is_dir():
            raise DemoError(f"training saved no checkpoint in {last.parent} "
                            "(raise --train-minutes or lower --save-every)")
        step = json.loads((last / "training_state" / "training_step.json").read_text())["step"]
        self.trained_steps = step
        say(f"last checkpoint: {last.resolve().name} (step {step})")
        self.use_best = False
        if selector is not None:
            self.finish_selection(selector)

    def start_selector(self, follow: Proc) -> Proc:
        """select_checkpoint following the training process (validation rollouts in-process)."""
        return self.start("select_checkpoint", "soarm_act_policy", "select_checkpoint", ros=False,
                          args=[str(self.out / "train"), "--seeds", self.a.validation_seeds,
                                "--episode-time", str(self.a.episode_time), "--follow-pid", str(follow.proc.pid),
                                "--driver-params", str(CONFIG / "driver.yaml"), str(CONFIG / "demo" / "driver.yaml"),
                                "--no-progress"],
                          echo=r"\[select_checkpoint\]|error|Error")

    def finish_selection(self, selector: Proc) -> None:
        """Wait for the validation of the remaining checkpoints; on failure, keep the last one."""
        t0 = time.monotonic()
        try:
            self.run_to_end(selector, timeout=900, what="checkpoint selection")
        except DemoError as e:
            self.stop(selector)
            say(f"checkpoint selection failed, evaluating the last checkpoint instead: {e}")
            return
        self.timings["3b select checkpoint (after training)"] = round(time.monotonic() - t0, 1)
        self.selection = json.loads((self.out / "train" / "checkpoint_selection.json").read_text())
        self.use_best = True
        say(f"chosen checkpoint: step {self.selection['chosen_step']} of "
            f"{[r['step'] for r in self.selection['rows']]} (validation seeds {self.a.validation_seeds})")

    def policy_checkpoint(self) -> Path:
        """The checkpoint to evaluate: checkpoints/best when select_checkpoint chose one in this
        run (or, with --from-stage 4, in the run being resumed), else checkpoints/last (also
        after DAgger rounds, which continue training from the last checkpoint)."""
        ckpts = self.out / "train" / "checkpoints"
        if self.use_best is None:
            self.use_best = bool(self.a.from_stage == 4 and self.a.validation_seeds and self.selection_is_current())
        return ckpts / ("best" if self.use_best else "last") / "pretrained_model"

    def selection_is_current(self) -> bool:
        """Whether checkpoints/best was chosen among all checkpoints up to checkpoints/last (a
        run resumed after the selection has newer ones: then the last one is evaluated)."""
        path = self.out / "train" / "checkpoint_selection.json"
        if not (self.out / "train" / "checkpoints" / "best").is_dir() or not path.is_file():
            return False
        self.selection = json.loads(path.read_text())
        newest = max(r["step"] for r in self.selection["rows"])
        if newest < self.checkpoint_step():
            say(f"checkpoints/best was chosen up to step {newest}, before step {self.checkpoint_step()}: evaluating "
                "the last checkpoint (run select_checkpoint on the train dir to choose again)")
            self.selection = None
            return False
        return True

    def start_policy(self) -> Proc:
        """The policy node on `policy_checkpoint()` (the evaluation's and the DAgger rollouts')."""
        ckpt = self.policy_checkpoint()
        if not ckpt.is_dir():
            raise DemoError(f"no checkpoint at {ckpt}")
        return self.start("policy", "soarm_act_policy", "policy",
                          params_files=[CONFIG / "policy.yaml", CONFIG / "demo" / "policy.yaml"],
                          params={"checkpoint": str(ckpt), "use_sim_time": True,
                                  **({"device": self.a.device} if self.a.device else {}),
                                  **({"mode": self.a.policy_mode} if self.a.policy_mode else {})},
                          echo=r"(?i)error|warm-up|loading")

    def checkpoint_step(self) -> int:
        """Training step of the last checkpoint."""
        last = self.out / "train" / "checkpoints" / "last"
        return int(json.loads((last / "training_state" / "training_step.json").read_text())["step"])

    def evaluate(self, eval_dir: Path | None = None) -> None:
        """Closed-loop evaluation of `policy_checkpoint()` into eval_dir (default <out>/eval)."""
        driver = self.driver(self.a.real_time_factor)
        policy = self.start_policy()
        ev = self.start("evaluate", "soarm_act_policy", "evaluate", ros=False,
                        args=["--num-episodes", str(self.a.eval_episodes), "--episode-time", str(self.a.episode_time),
                              "--seed", str(self.a.eval_seed), "--service-timeout", "180",
                              "--output-dir", str(eval_dir or self.out / "eval")],
                        echo=r"\[evaluate\]|error")
        self.run_to_end(ev, timeout=300 + self.a.eval_episodes * (3 * self.a.episode_time + 60), what="evaluation")
        self.stop(policy, driver)

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        t0 = time.monotonic()
        say(f"output: {self.out}  (ROS_DOMAIN_ID={self.a.domain_id})")
        pretrained = f"backbone pretrained {self.a.pretrain_minutes:g} min, " if self.a.pretrain_minutes > 0 else ""
        stages = [("1/4 record demonstrations (sim driver + recorder + scripted teleop)", self.record),
                  ("2/4 convert bags -> LeRobot dataset", self.convert),
                  (f"3/4 train ACT ({pretrained}--config {self.a.train_config}, up to {self.a.train_steps} steps"
                   f"{f' or {self.a.train_minutes:g} min' if self.a.train_minutes > 0 else ''})", self.train),
                  ("4/4 evaluate closed-loop (sim driver + policy + evaluate)", self.evaluate)]
        for name, fn in stages[self.a.from_stage - 1:self.a.to_stage]:
            self.stage(name, fn)
        if self.a.to_stage < 4:
            say(f"stopped after stage {self.a.to_stage} (--to-stage); continue with --from-stage {self.a.to_stage + 1}")
            return 0
        report_path = self.out / "eval" / "eval_report.json"
        report = json.loads(report_path.read_text())
        total = round(time.monotonic() - t0, 1)
        summary = {
            "success_rate": report["success_rate"], "successes": report["successes"],
            "stage_rates": report.get("stage_rates"), "episodes": report["num_episodes"], "report": str(report_path),
            "plot": str(self.out / "eval" / "eval_report.png"), "checkpoint":
            str(self.policy_checkpoint().parent.resolve() / "pretrained_model"),
            "trained_steps": self.trained_steps, "checkpoint_selection": self.selection,
            "stage_seconds": self.timings, "total_seconds": total, "settings": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.a).items()},
        }
        if self.a.dagger_rounds > 0:
            summary["dagger"] = self.dagger()
        (self.out / "demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        rates = report.get("stage_rates")
        stages = ", ".join(f"{k} {100 * v:.0f} %" for k, v in rates.items()) if rates else "unknown"
        banner(f"SUCCESS RATE {report['successes']}/{report['num_episodes']} "
               f"({100 * report['success_rate']:.0f} %) in {total / 60:.1f} min; stages: {stages}")
        say(f"report: {report_path}")
        say(f"plot:   {summary['plot']}")
        say(f"summary: {self.out / 'demo_summary.json'}")
        if "dagger" in summary:
            from demo_dagger import table

            banner("DAgger: success and stage rates on the evaluation seeds")
            print(table(summary["dagger"]), flush=True)
        return 0

    def dagger(self) -> dict:
        """--dagger-rounds: rollouts with expert corrections -> dataset -> train -> evaluate (demo_dagger.py)."""
        from demo_dagger import DaggerRounds

        return DaggerRounds(self, CONFIG, REPO_ID, say, banner, DemoError).run()


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", type=Path,
                   default=ROOT / "outputs" / f"demo_{dt.datetime.now():%Y%m%d_%H%M%S}", help="run directory")
    p.add_argument("--demos", type=int, default=40, help="scripted demonstrations to record (default: 40)")
    p.add_argument("--demo-seed", type=int, default=0, help="scene seed of the first demo (default: 0)")
    p.add_argument("--train-config", default="cpu", help="train preset: cpu | baseline | large (default: cpu)")
    p.add_argument("--train-steps", type=int, default=6000,
                   help="max training steps; --train-minutes may stop earlier (default: 6000)")
    p.add_argument("--train-arg", action="append", default=[], help="extra flag passed to train (repeatable), "
                   "e.g. --train-arg=--batch-size=16")
    p.add_argument("--train-minutes", type=float, default=13.0,
                   help="training time budget (train --max-minutes): training stops there with a checkpoint "
                   "of its last step (0 = no limit) (default: 13)")
    p.add_argument("--pretrain-minutes", type=float, default=5.0,
                   help="pretrain the vision backbone on labelled sim frames for this long (pretrain_backbone), then "
                   "train ACT with it frozen (--lr-backbone 0); 0: ACT trains its backbone from the preset's initial "
                   "weights (default: 5)")
    p.add_argument("--pretrain-samples", type=int, default=4000,
                   help="labelled sim frames rendered for the backbone pretraining (default: 4000)")
    p.add_argument("--save-every", type=int, default=1000,
                   help="also checkpoint every N training steps (default: 1000)")
    p.add_argument("--device", default=None, help="train/policy device (default: the preset's; cpu preset: cpu)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes (default: 10)")
    p.add_argument("--episode-time", type=float, default=20.0,
                   help="max policy time per eval episode, s (default: 20; the expert needs ~9.4 s)")
    p.add_argument("--policy-mode", default=None, choices=("auto", "ensemble", "chunk", "async"),
                   help="policy execution mode for the evaluation (default: config/demo/policy.yaml's)")
    p.add_argument("--eval-seed", type=int, default=1000, help="scene seed of the first eval episode (default: 1000)")
    p.add_argument("--validation-seeds", default="2000-2009",
                   help="scene seeds on which select_checkpoint rolls every saved checkpoint out in-process to "
                   "choose the one to evaluate; must not overlap the demo or evaluation seeds; '' = evaluate the "
                   "last checkpoint (default: 2000-2009)")
    p.add_argument("--image-size", type=parse_size, default=None, metavar="WxH",
                   help="camera size for both cameras (default: config/demo/driver.yaml, 80x60)")
    p.add_argument("--real-time-factor", type=float, default=1.0,
                   help="sim speed vs wall clock while the policy is evaluated (default: 1)")
    p.add_argument("--record-speed", type=float, default=2.0,
                   help="sim speed vs wall clock while the scripted demonstrations are recorded (default: 2)")
    p.add_argument("--domain-id", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "42") or 42),
                   help="ROS_DOMAIN_ID for all processes (default: $ROS_DOMAIN_ID or 42)")
    g = p.add_argument_group("DAgger rounds after the evaluation (scripts/demo_dagger.py)")
    g.add_argument("--dagger-rounds", type=int, default=0,
                   help="rounds of: policy rollouts corrected by the scripted expert (recorded) -> corrections "
                   "appended to the dataset -> train --resume -> evaluate on the same seeds (default: 0)")
    g.add_argument("--dagger-episodes", type=int, default=10, help="policy rollouts per round (default: 10)")
    g.add_argument("--dagger-seed", type=int, default=3000,
                   help="scene seed of round 1's first rollout; round r starts at seed + (r-1) x episodes, apart "
                   "from the demo and evaluation seeds (default: 3000)")
    g.add_argument("--dagger-take-over-after", type=float, default=4.0,
                   help="the expert takes over when no new task stage was reached for this long, s (default: 4)")
    g.add_argument("--dagger-episode-time", type=float, default=0.0,
                   help="rollout time limit, s (default: --episode-time + 15, room for the expert to finish)")
    g.add_argument("--dagger-steps", type=int, default=2000,
                   help="training steps added per round (train --resume) (default: 2000)")
    g.add_argument("--dagger-train-minutes", type=float, default=5.0,
                   help="time budget of each round's training, min (0 = no limit) (default: 5)")
    p.add_argument("--from-stage", type=int, choices=(1, 2, 3, 4), default=1,
                   help="resume a run in --output-dir at this stage (earlier outputs must exist)")
    p.add_argument("--to-stage", type=int, choices=(1, 2, 3, 4), default=4, help="stop after this stage")
    return p


def check_seeds(args) -> None:
    """The validation seeds must be scenes seen neither in the demos nor in the evaluation."""
    if not args.validation_seeds:
        return
    from soarm_act_policy.evaluation.rollout import parse_seeds

    try:
        validation = set(parse_seeds([args.validation_seeds]))
    except ValueError:
        raise DemoError(f"--validation-seeds {args.validation_seeds!r}: expected e.g. 2000-2009 or 5,7,9") from None
    for name, first, n in (("demo", args.demo_seed, args.demos), ("evaluation", args.eval_seed, args.eval_episodes)):
        overlap = sorted(validation & set(range(first, first + n)))
        if overlap:
            raise DemoError(f"--validation-seeds overlap the {name} seeds {first}..{first + n - 1} "
                            f"(e.g. {overlap[0]}): choose validation scenes the policy is neither trained nor "
                            "evaluated on")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_seeds(args)
    except DemoError as e:
        print(f"[demo] error: {e}", file=sys.stderr)
        return 2
    demo = Demo(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("\n[demo] interrupted: stopping all processes", file=sys.stderr, flush=True)
        return 130
    except DemoError as e:
        print(f"\n[demo] FAILED: {e}", file=sys.stderr, flush=True)
        print(f"[demo] logs: {demo.logs}", file=sys.stderr, flush=True)
        return 1
    finally:
        demo.stop_all()


if __name__ == "__main__":
    sys.exit(main())

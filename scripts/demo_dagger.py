"""DAgger rounds of the simulated demo (scripts/demo.py --dagger-rounds N; issue 13, item 4).

After the demo's evaluation, each round:

  1. rollout   sim driver + policy (the last checkpoint) + evaluate on fresh seeds, with the scripted
               expert as the human (teleop source:=scripted take_over:=true take_over_after:=S: it
               takes over when no new task stage was reached for S s and finishes the task from
               wherever the arm and the cube are) and the recorder keeping every episode as a bag
               (INTERVENTION_START/END events mark the corrections);
  2. convert   bag_to_lerobot --append --frames corrections --intervention-feature never: each
               correction window becomes an episode of the demo dataset. Only the expert's frames go
               in (the policy's own frames before a stall are what it should not imitate), and
               without the `intervention` feature: the demo dataset has none and every frame of
               both (demonstrations and corrections) is the expert's, so the label would carry no
               information and the appended dataset keeps the features the training run was
               started with (train --resume reads the same dataset root);
  3. train     train --resume with --dagger-steps more steps on demonstrations + corrections (the
               backbone stays frozen: the checkpoint's config keeps --lr-backbone 0);
  4. evaluate  the demo's evaluation again, same unseen seeds, into <out>/dagger/round_<r>/eval.

demo_summary.json gets "dagger": the rates before (the demo's evaluation) and after each round,
the rollouts' interventions and the corrections added. A round whose rollouts needed no
correction adds nothing and trains no further.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

#: train flags that may change on --resume (training/config.py RESUME_OVERRIDABLE, the ones the demo passes on).
RESUME_FLAGS = ("--num-workers", "--torch-threads", "--log-freq")


def eval_rates(report_path: Path) -> dict:
    """Success and stage rates of an eval_report.json, and its interventions."""
    r = json.loads(report_path.read_text())
    return {"success_rate": r["success_rate"], "successes": r["successes"], "episodes": r["num_episodes"],
            "stage_rates": r.get("stage_rates"), "interventions": r.get("interventions", 0),
            "episodes_with_interventions": r.get("episodes_with_interventions", 0),
            "human_time": r.get("human_time", 0.0), "report": str(report_path)}


def dataset_size(root: Path) -> tuple[int, int]:
    info = json.loads((root / "meta" / "info.json").read_text())
    return int(info["total_episodes"]), int(info["total_frames"])


def resume_args(train_args: list[str]) -> list[str]:
    """The demo's extra train flags that --resume accepts (model flags are the checkpoint's)."""
    return [a for a in train_args if a.split("=", 1)[0] in RESUME_FLAGS]


class DaggerRounds:
    """Runs the rounds with a Demo's process helpers (scripts/demo.py); see the module docstring."""

    def __init__(self, demo, config_dir: Path, repo_id: str, say, banner, error):
        self.d, self.a = demo, demo.a
        self.config, self.repo_id = config_dir, repo_id
        self.say, self.banner, self.error = say, banner, error
        self.root = demo.out / "dagger"

    def round_dir(self, r: int) -> Path:
        return self.root / f"round_{r}"

    def episode_time(self) -> float:
        """Rollout time limit: the evaluation's, plus time for the expert to finish after a late take-over."""
        return self.a.dagger_episode_time or self.a.episode_time + 15.0

    def rollout(self, r: int) -> dict:
        """Policy episodes on this round's seeds with the expert correcting stalls, all recorded."""
        d, c, out = self.d, self.config, self.round_dir(r)
        seed = self.a.dagger_seed + (r - 1) * self.a.dagger_episodes
        limit = self.episode_time()
        driver = d.driver(self.a.real_time_factor)
        recorder = d.start("recorder", "soarm_act_policy", "recorder",
                           params_files=[c / "recorder.yaml", c / "demo" / "recorder.yaml"],
                           params={"output_dir": str(out / "bags"), "use_sim_time": True}, echo=r"(?i)error")
        teleop = d.start("teleop", "soarm_driver", "teleop",
                         params_files=[c / "teleop.yaml", c / "demo" / "teleop.yaml"],
                         params={"take_over": True, "take_over_after": self.a.dagger_take_over_after,
                                 "episode_timeout": limit + 5.0, "post_success_time": 0.5, "use_sim_time": True},
                         echo=r"taking over|error")
        policy = d.start_policy()
        ev = d.start("evaluate", "soarm_act_policy", "evaluate", ros=False,
                     args=["--num-episodes", str(self.a.dagger_episodes), "--episode-time", str(limit),
                           "--seed", str(seed), "--service-timeout", "180", "--output-dir", str(out / "rollout"),
                           "--no-plot"],
                     echo=r"\[evaluate\]|error")
        d.run_to_end(ev, timeout=300 + self.a.dagger_episodes * (3 * limit + 60), what=f"DAgger round {r} rollouts")
        time.sleep(1.0)  # the last episode's tail reaches the recorder
        d.stop(policy, teleop, recorder, driver)
        rates = eval_rates(out / "rollout" / "eval_report.json")
        rates["seeds"] = [seed, seed + self.a.dagger_episodes - 1]
        self.say(f"round {r} rollouts: {rates['successes']}/{rates['episodes']} succeeded (policy + expert), "
                 f"{rates['interventions']} interventions, {rates['human_time']:.1f} s under the expert")
        return rates

    def add_corrections(self, r: int) -> dict:
        """Append the round's correction windows to the demo dataset."""
        d, out, dataset = self.d, self.round_dir(r), self.d.out / "dataset"
        before = dataset_size(dataset)
        p = d.start("bag_to_lerobot", "soarm_act_policy", "bag_to_lerobot", ros=False,
                    args=[str(out / "bags"), "--repo-id", self.repo_id, "--root", str(dataset), "--append",
                          "--frames", "corrections", "--intervention-feature", "never", "--on-problem", "skip",
                          "--report", str(out / "conversion_report.json"), "--quiet"],
                    echo=r"(?i)error|problem")
        try:
            d.run_to_end(p, timeout=60 + 30 * self.a.dagger_episodes, what=f"converting round {r}'s corrections")
        except self.error:
            d.stop(p)  # exited: no longer one of the running processes
            if "no usable episode" not in p.log_path.read_text(errors="replace"):
                raise
            self.say(f"round {r}: no usable correction window (see {p.log_path}): nothing added")
        after = dataset_size(dataset)
        added = {"episodes": after[0] - before[0], "frames": after[1] - before[1], "dataset_episodes": after[0],
                 "dataset_frames": after[1]}
        self.say(f"round {r}: {added['episodes']} correction episodes ({added['frames']} frames) added; dataset "
                 f"{after[0]} episodes, {after[1]} frames")
        return added

    def train(self, r: int) -> int:
        """train --resume with dagger_steps more steps; returns the step reached."""
        d = self.d
        start = d.checkpoint_step()
        steps = start + self.a.dagger_steps
        args = ["--repo-id", self.repo_id, "--output-dir", str(d.out / "train"), "--resume", "--steps", str(steps),
                "--save-freq", str(min(self.a.save_every, self.a.dagger_steps)), "--no-progress-bar"]
        if self.a.dagger_train_minutes > 0:
            args += ["--max-minutes", str(self.a.dagger_train_minutes)]
        if self.a.device:
            args += ["--device", self.a.device]
        args += resume_args(self.a.train_arg)
        p = d.start("train", "soarm_act_policy", "train", args=args, ros=False, echo=r"error|Error|\[train\]")
        minutes = self.a.dagger_train_minutes
        d.run_to_end(p, timeout=minutes * 60 + 600 if minutes > 0 else 7 * 86400, what=f"round {r} training")
        d.use_best = False  # the round trained on from the last checkpoint: evaluate what it made
        step = d.checkpoint_step()
        if step <= start:
            raise self.error(f"round {r}: training saved no new checkpoint (still step {start}); raise "
                             "--dagger-train-minutes or lower --save-every")
        self.say(f"round {r}: trained steps {start} -> {step}")
        return step

    def run(self) -> dict:
        """All rounds; the "dagger" part of demo_summary.json."""
        before = eval_rates(self.d.out / "eval" / "eval_report.json")
        result = {"before": before, "take_over_after": self.a.dagger_take_over_after,
                  "rollout_episode_time": self.episode_time(), "rounds": []}
        for r in range(1, self.a.dagger_rounds + 1):
            self.banner(f"DAgger round {r}/{self.a.dagger_rounds}: rollouts with expert corrections -> dataset -> "
                        f"train +{self.a.dagger_steps} steps -> evaluate")
            t0 = time.monotonic()
            rollout = self.rollout(r)
            entry = {"round": r, "rollout": rollout}
            if rollout["interventions"] == 0:
                self.say(f"round {r}: no correction was needed: nothing to add, no further training")
                entry.update(corrections={"episodes": 0, "frames": 0}, trained_steps=self.d.checkpoint_step())
            else:
                entry["corrections"] = self.add_corrections(r)
                entry["trained_steps"] = (self.train(r) if entry["corrections"]["episodes"] > 0
                                          else self.d.checkpoint_step())
            self.d.evaluate(self.round_dir(r) / "eval")
            entry["eval"] = eval_rates(self.round_dir(r) / "eval" / "eval_report.json")
            entry["seconds"] = round(time.monotonic() - t0, 1)
            result["rounds"].append(entry)
            self.say(f"round {r}: success {fmt(before)} before -> {fmt(entry['eval'])} after "
                     f"({rollout['interventions']} interventions in the rollouts)")
            (self.root / "dagger_summary.json").write_text(json.dumps(result, indent=2) + "\n")
        return result


def fmt(rates: dict) -> str:
    stages = rates.get("stage_rates") or {}
    text = ", ".join(f"{k} {100 * v:.0f} %" for k, v in stages.items())
    return f"{rates['successes']}/{rates['episodes']} ({100 * rates['success_rate']:.0f} %; {text or 'no stages'})"


def table(result: dict) -> str:
    """Before/after lines for the console."""
    lines = [f"before DAgger: {fmt(result['before'])}"]
    for e in result["rounds"]:
        lines.append(f"after round {e['round']}: {fmt(e['eval'])}; rollouts {e['rollout']['interventions']} "
                     f"interventions in {e['rollout']['episodes']} episodes, +{e['corrections']['episodes']} "
                     f"correction episodes, step {e['trained_steps']}")
    return "\n".join(lines)

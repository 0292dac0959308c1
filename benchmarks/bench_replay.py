#!/usr/bin/env python3
"""Replay benchmark: replay every episode of a demo dataset on the sim driver.

    source activate.sh
    python benchmarks/bench_replay.py --demo-dir /tmp/demo20            # records it first if needed
    python benchmarks/bench_replay.py --demo-dir /tmp/demo20 --episodes 0 1 2

<demo-dir>/dataset is a dataset of scripted demos as `scripts/demo.py --to-stage 2` makes it
(recorded over DDS by the sim driver + teleop + recorder, converted by bag_to_lerobot); when
it is missing, this script runs `scripts/demo.py --output-dir <demo-dir> --demos N --to-stage 2`
first (~6 min for 20 demos on a 2-core machine). Then it starts the sim driver with the
demo's parameters (config/driver.yaml + config/demo/driver.yaml) in its own DDS domain and
runs `replay` on the dataset: each episode's scene is rebuilt from its seed and its recorded
actions are played through `joint_trajectory`. Prints the success count (the expert's own
rate is the reference: 20/20 in bench_sim.py) and the per-joint RMS between the replayed
joint states and the recorded observation.state; the full report is
<demo-dir>/replay/replay_report.json. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPO = "local/soarm_sim_demo"  # scripts/demo.py's repo id


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo-dir", type=Path, default=Path("/tmp/bench_replay_demo"),
                   help="demo output dir holding dataset/ (recorded when missing)")
    p.add_argument("--demos", type=int, default=20, help="demos to record when the dataset is missing (default: 20)")
    p.add_argument("--repo-id", default=REPO)
    p.add_argument("--episodes", type=int, nargs="*", default=None, help="dataset episodes (default: all)")
    p.add_argument("--domain-id", type=int, default=100 + os.getpid() % 100)
    p.add_argument("--replay-arg", action="append", default=[], help="extra flag for replay (repeatable)")
    a = p.parse_args()

    env = {**os.environ, "ROS_DOMAIN_ID": str(a.domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    demo = a.demo_dir.resolve()
    dataset = demo / "dataset"
    if not (dataset / "meta" / "info.json").exists():
        print(f"[bench_replay] no dataset in {demo}: recording {a.demos} demos with scripts/demo.py --to-stage 2",
              flush=True)
        t0 = time.monotonic()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--output-dir", str(demo),
                        "--demos", str(a.demos), "--to-stage", "2", "--domain-id", str(a.domain_id)],
                       check=True, env=env)
        print(f"[bench_replay] recorded and converted in {time.monotonic() - t0:.0f} s", flush=True)

    exe = ROOT / "install" / "soarm_driver" / "lib" / "soarm_driver" / "driver"
    replay = ROOT / "install" / "soarm_act_policy" / "lib" / "soarm_act_policy" / "replay"
    for x in (exe, replay):
        if not x.exists():
            sys.exit(f"{x} missing: run scripts/setup.sh")
    out = demo / "replay"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "driver.log", "w") as log:
        driver = subprocess.Popen([str(exe), "--ros-args", "--params-file", str(ROOT / "config" / "driver.yaml"),
                                   "--params-file", str(ROOT / "config" / "demo" / "driver.yaml")],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            t0 = time.monotonic()
            cmd = [str(replay), "--repo-id", a.repo_id, "--root", str(dataset), "--output-dir", str(out),
                   *a.replay_arg]
            if a.episodes:
                cmd += ["--episodes", *map(str, a.episodes)]
            rc = subprocess.run(cmd, env=env).returncode
            wall = time.monotonic() - t0
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGINT)
                try:
                    driver.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(driver.pid, signal.SIGKILL)
    report_path = out / "replay_report.json"
    if not report_path.exists():
        print(f"[bench_replay] replay failed (exit {rc}), no report", flush=True)
        return 1
    r = json.loads(report_path.read_text())
    recorded = sum(1 for e in r["episodes"] if e["recorded_outcome"] == "success")
    print(f"\n[bench_replay] dataset {dataset}: replayed {r['num_episodes']} episodes in {wall:.0f} s wall")
    print(f"[bench_replay] success {r['successes']}/{r['num_episodes']} (recorded: {recorded}/{r['num_episodes']}); "
          f"stage counts {r['stage_counts']}")
    if r["state_rms"]:
        print("[bench_replay] state RMS per joint over all frames (rad): "
              + ", ".join(f"{j} {v:.4f}" for j, v in r["state_rms"].items())
              + f"; worst episode/joint {r['state_rms_max']:.4f}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

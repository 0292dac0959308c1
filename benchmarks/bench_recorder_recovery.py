#!/usr/bin/env python3
"""Recorder durability benchmark: what a SIGKILL loses, and how long the recovery takes.

    source activate.sh
    python benchmarks/bench_recorder_recovery.py                      # 320x240, 5 s, 3 runs
    python benchmarks/bench_recorder_recovery.py --size 640x480 --kill-after 5 --runs 3

A child process records like the recorder does (bags.writer.BagWriter, default
`chunk_period`): joint_states and joint_commands at 30 Hz and two rgb8 cameras at 30 Hz,
paced in real time, raw CDR written as received. The parent SIGKILLs it --kill-after
seconds after its first message, then recovers the `.partial` bag in place
(bags.recovery.recover_partial) and reads it back (bags.open_bag). Printed per run:
messages written before the kill (the child's count, from its progress file), messages
recovered, the newest recovered log time before the kill (s: the loss window, expected
<= chunk_period plus one chunk's write), the recovery time and the bag size. Asserts
nothing (the pass/fail checks are in tests/test_recorder_dds.py and
src/soarm_act_policy/test/test_recorder_durability.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import os, sys, time
from pathlib import Path
import numpy as np
from soarm_act_policy.bags import BagWriter, make_typestore
from soarm_act_policy.bags.synthetic import image, joint_state, frame_image

out, w_, h_, progress = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
store = make_typestore()
js = "sensor_msgs/msg/JointState"
im = "sensor_msgs/msg/Image"
frames = [store.serialize_cdr(image(0, frame_image(i, c, h_, w_)), im) for i in range(8) for c in range(2)]
w = BagWriter(out)
for t in ("joint_states", "joint_commands"):
    w.add_topic(t, js)
for c in ("front", "wrist"):
    w.add_topic(f"cameras/{c}/image_raw", im)
t0 = time.monotonic()
k = 0
while True:
    now_ns = time.time_ns()
    w.write_raw("joint_states", now_ns, store.serialize_cdr(joint_state(now_ns, ["a"] * 6, [0.1] * 6), js))
    w.write_raw("joint_commands", now_ns, store.serialize_cdr(joint_state(now_ns, ["a"] * 6, [0.2] * 6), js))
    w.write_raw("cameras/front/image_raw", now_ns, frames[(2 * k) % len(frames)])
    w.write_raw("cameras/wrist/image_raw", now_ns, frames[(2 * k + 1) % len(frames)])
    k += 1
    tmp = progress.with_suffix(".tmp")
    tmp.write_text(f"{w.message_count} {now_ns}")
    os.replace(tmp, progress)  # atomic: the parent reads it after the kill
    time.sleep(max(0.0, t0 + k / 30 - time.monotonic()))
"""


def run_once(root: Path, w: int, h: int, kill_after: float) -> dict:
    from soarm_act_policy.bags import open_bag
    from soarm_act_policy.bags.recovery import recover_partial

    bag = root / "episode_000000_bench"
    progress = root / "progress"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(bag), str(w), str(h), str(progress)])
    while not progress.exists():
        if child.poll() is not None:
            raise SystemExit(f"writer exited with {child.returncode}")
        time.sleep(0.01)
    time.sleep(kill_after)
    kill_ns = time.time_ns()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    written = int(progress.read_text().split()[0])
    partial = root / f".{bag.name}.partial"
    t = time.monotonic()
    r = recover_partial(partial)
    seconds = time.monotonic() - t
    with open_bag(r.path) as b:
        n = b.message_count
        newest = max(m.log_time_ns for m in b.messages(list(b.topics), raw=True))
    size = sum(f.stat().st_size for f in r.path.iterdir())
    return {"written": written, "recovered": n, "loss_s": (kill_ns - newest) * 1e-9, "recovery_s": seconds,
            "mb": size / 1e6, "chunks": r.chunks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="320x240", help="camera image size WxH (default %(default)s)")
    ap.add_argument("--kill-after", type=float, default=5.0, help="seconds of recording before SIGKILL")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    print(f"two {w}x{h} rgb8 cameras + 2 joint topics at 30 Hz, SIGKILL after {a.kill_after} s")
    for i in range(a.runs):
        with tempfile.TemporaryDirectory() as d:
            r = run_once(Path(d), w, h, a.kill_after)
        print(f"run {i}: {r['recovered']}/{r['written']} messages recovered ({r['chunks']} chunks, "
              f"{r['mb']:.1f} MB); newest {r['loss_s']:.2f} s before the kill; recovery {r['recovery_s']:.2f} s")


if __name__ == "__main__":
    main()

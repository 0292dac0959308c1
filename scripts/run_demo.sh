#!/usr/bin/env bash
# The main job: the end-to-end simulated demo, from a bare machine.
#
#   bash scripts/run_demo.sh                      # defaults: < 30 min on a 2-core CPU, no GPU
#   bash scripts/run_demo.sh --output-dir outputs/demo1 --demos 30
#   bash scripts/run_demo.sh --demos 50 --train-config baseline --train-steps 20000 --device cuda   # GPU
#
# Sets up whatever is missing (scripts/setup.sh: venv, colcon build), then runs
# scripts/demo.py: record scripted demos over DDS -> bag_to_lerobot -> train --config cpu ->
# closed-loop evaluation -> prints the success rate and where the report is.
# All flags: python scripts/demo.py --help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
set +u
# shellcheck disable=SC1091
source "$ROOT/activate.sh"
set -u
exec python "$ROOT/scripts/demo.py" "$@"

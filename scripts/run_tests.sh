#!/usr/bin/env bash
# The test command: sets everything up from nothing (scripts/setup.sh), then runs pytest.
#   bash scripts/run_tests.sh [pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
set +u; source "$ROOT/activate.sh"; set -u
cd "$ROOT"
status=0
python -m pytest "$@" || status=$?
if [[ $status -eq 5 ]]; then echo "error: pytest collected no test" >&2; exit 1; fi
exit $status

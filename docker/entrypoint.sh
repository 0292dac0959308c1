#!/usr/bin/env bash
# Container entry point: ROS 2 + the soarm_act venv + the built workspace, then the command.
set -e
# shellcheck disable=SC1090,SC1091
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /opt/soarm_venv/bin/activate
# shellcheck disable=SC1091
source /ws/install/setup.bash
exec "$@"

# Source me (bash or zsh) after `bash scripts/setup.sh`:
#     source activate.sh
# Activates the venv and the colcon workspace and selects the project's Fast DDS profile.
if [ -n "${BASH_SOURCE[0]:-}" ]; then _soarm_self="${BASH_SOURCE[0]}"; else _soarm_self="${(%):-%x}"; fi
SOARM_ROOT="$(cd "$(dirname "$_soarm_self")" && pwd)"
export SOARM_ROOT
_soarm_venv="${SOARM_VENV:-$SOARM_ROOT/.venv}"
if [ ! -f "$_soarm_venv/bin/activate" ] || [ ! -f "$SOARM_ROOT/install/setup.sh" ]; then
    echo "soarm_act: not set up yet; run: bash $SOARM_ROOT/scripts/setup.sh" >&2
    return 1 2>/dev/null || exit 1
fi
. "$_soarm_venv/bin/activate"
export CMAKE_PREFIX_PATH="$_soarm_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$_soarm_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [ -n "${ZSH_VERSION:-}" ]; then . "$SOARM_ROOT/install/setup.zsh"; else . "$SOARM_ROOT/install/setup.bash"; fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large shared-memory segment + UDP: camera images arrive on one machine (Fast DDS
# defaults lose most best-effort images and cost ~13 ms for reliable ones).
# Multi-machine set-ups pick another profile from config/dds/ (see README).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$SOARM_ROOT/config/dds/local.xml}"
# Use the profile's discovery settings as written: local.xml keeps DDS on this host, unicast.xml
# on the listed machines (SUBNET, the ROS default, adds multicast announcements to the LAN).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-SYSTEM_DEFAULT}"
# Headless MuJoCo rendering through Mesa EGL.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
unset _soarm_self _soarm_venv

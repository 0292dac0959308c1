#!/usr/bin/env bash
# soarm_act setup: from a bare machine (no ROS install, no GPU) to a built workspace.
#
#   bash scripts/setup.sh          # idempotent; a second run with nothing changed takes seconds
#   source activate.sh             # afterwards, in every shell
#
# Steps, each skipped when already done:
#   1. find a Python 3.12 interpreter (SOARM_PYTHON, python3.12 on PATH, pyenv, /usr/bin)
#   2. system libraries: FFmpeg shared libs (LeRobot's video decoding through torchcodec),
#      Mesa EGL (MuJoCo offscreen rendering)          -- apt-get, only when missing
#   3. the virtual environment ($SOARM_VENV, default .venv) with the pinned wheels of
#      requirements.txt (+ requirements.lock as constraints on x86_64 Linux)
#   4. the CMake path fix for the ROS 2 wheels (their exports name the wheel builder's Python)
#   5. colcon build of src/ into build/ and install/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SOARM_VENV:-$ROOT/.venv}"
SETUP_VERSION=3   # bump to force every machine through the install steps again

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------- 1. Python 3.12
is_py312() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }

find_python312() {
    local c
    if [[ -n "${SOARM_PYTHON:-}" ]]; then
        is_py312 "$SOARM_PYTHON" || die "SOARM_PYTHON=$SOARM_PYTHON is not a working Python 3.12 with venv"
        echo "$SOARM_PYTHON"; return
    fi
    local candidates=()
    # pyenv installs: call the real binaries, not the shims (a shim needs PYENV_VERSION).
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    if command -v pyenv >/dev/null 2>&1; then pyenv_root="$(pyenv root 2>/dev/null || echo "$pyenv_root")"; fi
    for c in $(ls -d "$pyenv_root"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do candidates+=("$c"); done
    candidates+=(/usr/bin/python3.12 /usr/local/bin/python3.12)
    c="$(command -v python3.12 2>/dev/null || true)"
    [[ -n "$c" && "$c" != */shims/* ]] && candidates+=("$c")
    for c in "${candidates[@]}"; do
        if [[ -x "$c" ]] && is_py312 "$c"; then echo "$c"; return; fi
    done
    die "no Python 3.12 found (ROS 2 Jazzy/Kilted and LeRobot 0.6 need it).
  Ubuntu 24.04:  sudo apt install python3.12 python3.12-venv
  pyenv:         pyenv install 3.12
  or point SOARM_PYTHON at a python3.12 binary."
}

# ---------------------------------------------------------------------------- 2. system libraries
# (no `grep -q` on a pipe: under pipefail its early exit can fail the pipeline with SIGPIPE)
have_lib() { ldconfig -p 2>/dev/null | grep "$1" >/dev/null; }

apt_install() {
    local sudo=""
    if [[ $EUID -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
            say "WARNING: missing system packages ($*) and no root: install them with"
            say "         sudo apt-get install $*"
            return 0
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || { say "WARNING: no apt-get; install the equivalent of: $*"; return 0; }
    say "apt-get install $*"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

system_packages() {
    local want=()
    local ffmpeg_libs=(libavutil libavcodec libavformat libavdevice libavfilter libswscale libswresample)
    local missing_ffmpeg=0 l
    for l in "${ffmpeg_libs[@]}"; do have_lib "$l.so" || missing_ffmpeg=1; done
    if [[ $missing_ffmpeg -eq 1 ]]; then
        local id="" ver=""
        if [[ -r /etc/os-release ]]; then . /etc/os-release; id="${ID:-}"; ver="${VERSION_ID:-}"; fi
        case "$id-$ver" in
            debian-12) want+=(libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4) ;;
            ubuntu-24.04) want+=(libavutil58 libavcodec60 libavformat60 libavdevice60 libavfilter9 libswscale7 libswresample4) ;;
            *) want+=(ffmpeg) ;;
        esac
    fi
    have_lib libEGL.so.1 || want+=(libegl1)
    have_lib libEGL_mesa.so.0 || want+=(libegl-mesa0 libgl1-mesa-dri)
    if [[ ${#want[@]} -gt 0 ]]; then apt_install "${want[@]}"; fi
}

# ---------------------------------------------------------------------------- 3+4. venv
fix_ros_cmake_paths() {
    # The ROS 2 wheels' CMake exports name the wheel builder's interpreter
    # (/opt/python/cp312-cp312/...). Point them at this venv's Python instead.
    local py_include np_include
    py_include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    np_include="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
    local files
    files="$(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true)"
    [[ -n "$files" ]] || return 0   # already fixed
    echo "$files" | while read -r f; do
        sed -i -E \
            -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_include}#g" \
            -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_include}#g" "$f"
    done
}

requirements_stamp() {
    cat "$ROOT/requirements.txt" "$ROOT/requirements.lock" 2>/dev/null | sha256sum | cut -c1-16
    echo "setup-v$SETUP_VERSION $(uname -m)"
}

setup_venv() {
    local py="$1" stamp_file="$VENV/.soarm-requirements"
    local want; want="$(requirements_stamp)"
    if [[ -x "$VENV/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
        say "venv up to date: $VENV"; return
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating venv $VENV with $py"
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    local args=(-r "$ROOT/requirements.txt")
    if [[ "$(uname -sm)" == "Linux x86_64" && -f "$ROOT/requirements.lock" ]]; then args+=(-c "$ROOT/requirements.lock"); fi
    say "installing pinned packages (first time: several minutes, ~6 GB with torch)"
    # pip's own lines stream as they come (progress), minus the noise; its exit status counts.
    local pip_status=0
    set +e
    "$VENV/bin/python" -m pip install --progress-bar off "${args[@]}" 2>&1 | tee "$VENV/pip-install.log" \
        | grep -vE "^(Requirement already satisfied|WARNING: Location|Looking in|  Downloading|  Using cached|Downloading|Using cached|  Stored in|  Created wheel|  Building wheel)"
    pip_status=${PIPESTATUS[0]}
    set -e
    [[ $pip_status -eq 0 ]] || die "pip install failed (exit $pip_status); full log: $VENV/pip-install.log"
    "$VENV/bin/python" -m pip check >/dev/null || say "WARNING: pip check reports conflicts: $("$VENV/bin/python" -m pip check | head -3)"
    "$VENV/bin/python" -c 'import rclpy, lerobot, mujoco, rosbags, torch' \
        || die "the venv was installed but its core imports fail (see above)"
    fix_ros_cmake_paths
    echo "$want" > "$stamp_file"
}

# ---------------------------------------------------------------------------- 5. colcon build
source_tree_stamp() {
    (cd "$ROOT" && find src -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
    echo "$VENV"
}

colcon_build() {
    local stamp_file="$ROOT/install/.soarm-build" want
    want="$(source_tree_stamp)"
    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
        say "workspace up to date: $ROOT/install"; return
    fi
    say "colcon build (soarm_msgs, soarm_driver, soarm_act_policy)"
    (
        cd "$ROOT"
        set +u; source "$VENV/bin/activate"; set -u
        export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
        colcon --log-base "$ROOT/log" build --base-paths src --symlink-install \
            --build-base "$ROOT/build" --install-base "$ROOT/install" \
            --event-handlers console_cohesion- summary+ status- \
            --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python" \
            2>&1 | grep -v "has no 'local_setup" || true
        test "${PIPESTATUS[0]}" -eq 0
    ) || die "colcon build failed (log: $ROOT/log/latest_build)"
    [[ -f "$ROOT/install/setup.bash" ]] || die "colcon build produced no install/setup.bash"
    echo "$want" > "$stamp_file"
}

main() {
    local t0=$SECONDS py
    py="$(find_python312)"
    say "python: $py ($("$py" --version 2>&1))"
    system_packages
    setup_venv "$py"
    colcon_build
    say "done in $((SECONDS - t0)) s. Now: source $ROOT/activate.sh"
}

main "$@"

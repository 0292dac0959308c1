# syntax=docker/dockerfile:1
# soarm_act image for the robot computer: driver (feetech / sim / mock backends),
# robot_state_publisher, ros2 bag (record). ROS 2 Jazzy on Ubuntu 24.04, multi-arch
# (the ros:jazzy base is published for linux/amd64 and linux/arm64: x86 mini PC,
# Raspberry Pi 5, Jetson). From the repository root:
#   docker buildx build --platform linux/amd64,linux/arm64 -f docker/Dockerfile.robot -t soarm_act/robot .
#   docker compose -f docker/compose.yaml up driver
# torch is the CPU build (the robot computer runs no policy); the sim backend renders
# with Mesa EGL, headless.
ARG ROS_DISTRO=jazzy
FROM ros:${ROS_DISTRO}-ros-base

ARG ROS_DISTRO
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUJOCO_GL=egl \
    PYOPENGL_PLATFORM=egl \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp

# ROS packages the launch files and recorder use, Python venv tooling, Mesa EGL for
# MuJoCo rendering, FFmpeg libraries for LeRobot video, serial/camera access tools.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3-venv python3-pip python3-colcon-common-extensions \
        "ros-${ROS_DISTRO}-robot-state-publisher" \
        "ros-${ROS_DISTRO}-rmw-fastrtps-cpp" \
        "ros-${ROS_DISTRO}-rosbag2" "ros-${ROS_DISTRO}-rosbag2-storage-mcap" \
        libegl1 libegl-mesa0 libgl1-mesa-dri ffmpeg v4l-utils \
    && rm -rf /var/lib/apt/lists/*

# Python dependencies first (cached layer): LeRobot (Feetech motor bus), MuJoCo, rosbags...
COPY requirements-ros-machine.txt /ws/src/soarm_act/requirements-ros-machine.txt
RUN python3 -m venv --system-site-packages /opt/soarm_venv \
    && /opt/soarm_venv/bin/pip install --extra-index-url "${TORCH_INDEX}" \
        -r /ws/src/soarm_act/requirements-ros-machine.txt

# The workspace.
COPY . /ws/src/soarm_act
WORKDIR /ws
RUN . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && . /opt/soarm_venv/bin/activate \
    && colcon build --base-paths src/soarm_act/src --cmake-args -DBUILD_TESTING=OFF \
    && rm -rf build log

ENV FASTDDS_DEFAULT_PROFILES_FILE=/ws/src/soarm_act/config/dds/lan.xml
COPY docker/entrypoint.sh /entrypoint.sh
ENTRYPOINT ["/entrypoint.sh"]
CMD ["ros2", "launch", "/ws/src/soarm_act/launch/robot.launch.py", "backend:=feetech"]
